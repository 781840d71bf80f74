"""A compiled, frozen ResNet50 through torch.export and AOTInductor (the ahead-of-time
path of torch.compile), kept on disk so a restart loads it in a fraction of a second
instead of compiling again.

One package serves every batch size from 1 to the maximum batch (a dynamic batch
dimension). The cache key covers everything the compiled code depends on: the
weights, the precision, the maximum batch, torch's version and the CPU's vector
capability. A failed compile falls back to eager mode with a warning.

Loading a package runs its native code (dlopen), so a package is loaded only when
(1) its SHA-256 matches the digest recorded beside it when it was built here (a
package truncated, corrupted or swapped after its build is compiled again), and
(2) neither it, its digest nor its directory can be written by other users
(owned by this user or root, not world-writable): otherwise the model runs eager,
with a warning that says why.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from worker.artefacts import (
    SHARED_FILE_MODE,
    digest_path,
    file_digest,
    first_untrusted,
    recorded_digest_matches,
    write_atomically,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"


def cache_key(weights_identity: str, precision: str, max_batch: int) -> str:
    parts = [FORMAT_VERSION, weights_identity, precision, str(max_batch), torch.__version__,
             torch.backends.cpu.get_cpu_capability()]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


def compile_package(module: torch.nn.Module, precision_dtype: torch.dtype, max_batch: int,
                    target: Path) -> None:
    example = torch.zeros(min(2, max_batch), 3, 224, 224, dtype=precision_dtype)
    example = example.contiguous(memory_format=torch.channels_last)
    batch = torch.export.Dim("batch", min=1, max=max(2, max_batch))
    with torch.inference_mode():
        exported = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        # Compile to a temporary name, then rename: a crash never leaves half a file.
        # The digest is recorded from the file this process wrote, before it is
        # renamed into place.
        fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".partial.pt2")
        os.close(fd)
        try:
            torch._inductor.aoti_compile_and_package(
                exported, package_path=partial, inductor_configs={"freezing": True})
            write_atomically(digest_path(target), file_digest(Path(partial)) + "\n")
            os.chmod(partial, SHARED_FILE_MODE)
            os.replace(partial, target)
        finally:
            Path(partial).unlink(missing_ok=True)


class CompiledModelCache:
    def __init__(self, directory: Path, weights_identity: str, max_batch: int):
        self.directory = directory
        self.weights_identity = weights_identity
        self.max_batch = max_batch
        self.hit: bool | None = None
        self.compile_seconds = 0.0

    def path_for(self, precision: str) -> Path:
        key = cache_key(self.weights_identity, precision, self.max_batch)
        return self.directory / f"resnet50-{precision}-b{self.max_batch}-{key}.pt2"

    def compiler(self, precision: str) -> Callable[[torch.nn.Module], Callable]:
        def compile_or_load(module: torch.nn.Module) -> Callable:
            path = self.path_for(precision)
            started = time.perf_counter()
            try:
                self.hit = path.is_file()
                if self.hit:
                    untrusted = self._untrusted(path)
                    if untrusted:
                        log.warning("not loading the compiled model: %s; running it in eager "
                                    "mode (give the cache directory to this user alone)",
                                    untrusted)
                        self.hit = None
                        return module
                    if not recorded_digest_matches(path):
                        log.warning("the compiled model at %s does not match the digest "
                                    "recorded when it was built; compiling it again", path)
                        self.hit = False
                if not self.hit:
                    log.info("compiling the model (once; cached at %s)", path)
                    dtype = next(module.parameters()).dtype
                    compile_package(module, dtype, self.max_batch, path)
                compiled_model = torch._inductor.aoti_load_package(str(path))
            except Exception as error:  # no C++ compiler, unsupported op, ...
                log.warning("compiling the model failed (%s); running it in eager mode", error)
                return module
            finally:
                self.compile_seconds = time.perf_counter() - started
            log.info("compiled model %s in %.1f s", "loaded" if self.hit else "built",
                     self.compile_seconds)
            return compiled_model

        return compile_or_load

    @staticmethod
    def _untrusted(package: Path) -> str | None:
        return first_untrusted((package.parent, package, digest_path(package)))

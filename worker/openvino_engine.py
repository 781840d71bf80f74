"""The OpenVINO engine: the same torchvision ResNet50 and `MODEL_WEIGHTS`, converted
with `openvino.convert_model`, normalisation and layout folded into the graph
(uint8 NHWC in, float32 logits out), compiled for this CPU.

- IR cache: the converted model (and its int8 quantization) is saved as IR under
  `COMPILE_CACHE_DIR/openvino/`, keyed by the weights' digest, the IR's kind (float,
  or int8 with the calibration set's digest) and OpenVINO's version. It is loaded
  only when it matches the digest recorded when it was saved, and only from a
  directory no other user can write (`worker.artefacts`). Only building the IR
  needs torch; a worker with its IR cached never imports it.
- Compiled blobs go in OpenVINO's own cache (`CACHE_DIR`, beside the IR), so a
  warm start skips compiling for this CPU as well.
- Precision: `fp32` and `bf16` run the float IR with OpenVINO's inference precision
  hint (f32 or bf16); `int8` runs the quantized IR (NNCF post-training
  quantization, `worker.calibration`), its remaining float layers at the CPU's
  native precision (bf16 where it has it, else f32).
- `infer` runs one batch synchronously on `threads` threads; OpenVINO releases the
  GIL meanwhile, so the job threads' decoding and Redis work go on.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from worker.artefacts import (
    SHARED_DIRECTORY_MODE,
    SHARED_FILE_MODE,
    file_digest,
    first_untrusted,
    untrusted_reason,
    write_atomically,
)
from worker.engine import EngineUnavailable, model_info
from worker.labels import IMAGENET_CLASSES
from worker.precision import BF16_FLAGS, cpu_flags
from worker.preprocess import CROP_SIZE, MEAN_255, STD_255
from worker.settings import WorkerSettings

log = logging.getLogger(__name__)

FORMAT_VERSION = "1"
IR_FILES = ("model.xml", "model.bin")


def _openvino():
    try:
        import openvino
    except Exception as error:  # not installed, or its native libraries do not load
        raise EngineUnavailable(f"openvino cannot be imported: {error}") from None
    return openvino


def native_float_hint(flags: frozenset[str] | None = None) -> str:
    """OpenVINO's precision for float layers where nothing else is asked: bf16 on a
    CPU with native bf16 (AMX or AVX-512 BF16), else f32."""
    return "bf16" if (cpu_flags() if flags is None else flags) & BF16_FLAGS else "f32"


def ir_key(weights_identity: str, kind: str, version: str) -> str:
    parts = [FORMAT_VERSION, weights_identity, kind, version]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:20]


@dataclass
class IrCache:
    """Converted models on disk, one directory per key, with recorded digests."""

    directory: Path
    hit: bool | None = None
    build_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def path_for(self, key: str) -> Path:
        return self.directory / f"resnet50-{key}"

    def load_or_build(self, key: str, build) -> Path:
        """The directory of a verified IR for `key`, building it with `build(dir)`
        when there is none (or the one there no longer matches its digest). Workers
        starting together on one cache build it once: the others wait on a lock
        and then load what the first built."""
        target = self.path_for(key)
        self.hit = target.is_dir() and self._verified(target)
        if self.hit:
            return target
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o755)
        reason = untrusted_reason(self.directory)
        if reason:
            raise EngineUnavailable(f"the model cache is unsafe: {reason} (give the cache "
                                    "directory to this user alone)")
        with open(self.directory / ".build.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.hit = target.is_dir() and self._verified(target)  # built meanwhile?
            if not self.hit:
                self._build(target, build)
        return target

    def _build(self, target: Path, build) -> None:
        started = time.perf_counter()
        partial = Path(tempfile.mkdtemp(dir=self.directory, prefix=".partial-"))
        try:
            build(partial)
            write_atomically(partial / "digest", self._digests(partial))
            partial.chmod(SHARED_DIRECTORY_MODE)
            for path in partial.iterdir():
                path.chmod(SHARED_FILE_MODE)
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        self.build_seconds = time.perf_counter() - started

    @staticmethod
    def _digests(directory: Path) -> str:
        return "".join(f"{file_digest(directory / name)}  {name}\n" for name in IR_FILES)

    def _verified(self, target: Path) -> bool:
        paths = (self.directory, target, *(target / n for n in (*IR_FILES, "digest")))
        if not all(path.exists() for path in paths):
            return False
        reason = first_untrusted(paths)
        if reason:
            raise EngineUnavailable(f"not loading the cached model: {reason}")
        if (target / "digest").read_text() != self._digests(target):
            log.warning("the cached model at %s does not match the digest recorded when it "
                        "was saved; converting it again", target)
            return False
        return True


def convert(source, max_batch: int):
    """torchvision's ResNet50 with `source`'s weights → an OpenVINO model taking
    uint8 N×224×224×3 (RGB) and returning float32 N×1000 logits."""
    ov = _openvino()
    try:
        import torch

        from worker.model import build_module
    except ImportError as error:
        raise EngineUnavailable(
            f"this model is not converted yet, and converting it needs torch ({error}): "
            "install requirements/worker.txt, or run `python -m worker.bake` where it is "
            "(the worker image does so at build time, for its MODEL_PRECISION)") from None

    module = build_module(source, "fp32").to(memory_format=torch.contiguous_format)
    with torch.inference_mode():
        model = ov.convert_model(module, example_input=torch.zeros(1, 3, CROP_SIZE, CROP_SIZE))
    model.reshape([ov.Dimension(1, max(1, max_batch)), 3, CROP_SIZE, CROP_SIZE])
    return with_preprocessing(model)


def with_preprocessing(model):
    """Folds the normalisation and the NHWC → NCHW layout change into the graph."""
    ov = _openvino()
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).mean(list(MEAN_255)) \
        .scale(list(STD_255))
    ppp.output().tensor().set_element_type(ov.Type.f32)
    return ppp.build()


def blob_cache(directory: Path) -> Path | None:
    """OpenVINO's own cache of compiled blobs, refused where others could write;
    None where this process cannot write it (a read-only image: compile each start)."""
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o755)
    except OSError:
        pass
    if not directory.is_dir() or not os.access(directory, os.W_OK):
        log.info("no writable compiled-blob cache at %s: OpenVINO compiles at each start",
                 directory)
        return None
    reason = untrusted_reason(directory)
    if reason:
        raise EngineUnavailable(f"the compiled-blob cache is unsafe: {reason}")
    return directory


@dataclass
class OpenVinoEngine:
    compiled_model: object
    precision: str
    weights_name: str
    load_seconds: float
    compile_seconds: float
    labels: tuple[str, ...] = IMAGENET_CLASSES
    name: str = "openvino"
    compiled: bool = True

    def __post_init__(self):
        self._request = self.compiled_model.create_infer_request()

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """One batch on the engine's threads; the GIL is released meanwhile. Called
        from the batch thread only (one request, reused)."""
        self._request.infer({0: np.ascontiguousarray(batch, dtype=np.uint8)})
        return np.array(self._request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    def info(self) -> dict:
        return model_info(self)


def compile_config(precision: str, threads: int, flags: frozenset[str] | None = None) -> dict:
    hint = {"fp32": "f32", "bf16": "bf16"}.get(precision) or native_float_hint(flags)
    return {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": max(1, threads),
            "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}


def compile_for_cpu(core, xml: Path, precision: str, threads: int):
    """The model compiled for this CPU. bf16 asked of a CPU without native bf16 (where
    OpenVINO may refuse it) runs fp32 instead, with a warning."""
    try:
        return core.compile_model(str(xml), "CPU", compile_config(precision, threads))
    except Exception as error:
        if precision != "bf16":
            raise
        log.warning("OpenVINO cannot run bf16 on this CPU (%s); running fp32", error)
        return core.compile_model(str(xml), "CPU", compile_config("fp32", threads))


def load_openvino_engine(settings: WorkerSettings, precision: str, threads: int) -> OpenVinoEngine:
    ov = _openvino()
    from worker.weights import resolve_weights, weights_identity

    started = time.perf_counter()
    source = resolve_weights(settings.model_weights, download=False)
    identity = weights_identity(source)
    cache = IrCache(settings.compile_cache_dir / "openvino")
    max_batch = settings.batch_max_size
    if precision == "int8":
        from worker.calibration import CalibrationSet

        calibration = CalibrationSet.from_setting(settings.calibration_dir)
        key = ir_key(identity, f"int8-b{max_batch}-{calibration.identity}", ov.__version__)

        def build(directory: Path) -> None:
            from worker.calibration import quantize

            ov.save_model(quantize(convert(source, max_batch), calibration),
                          directory / "model.xml", compress_to_fp16=False)
    else:
        key = ir_key(identity, f"float-b{max_batch}", ov.__version__)

        def build(directory: Path) -> None:
            ov.save_model(convert(source, max_batch), directory / "model.xml",
                          compress_to_fp16=False)

    try:
        ir = cache.load_or_build(key, build)
        core = ov.Core()
        blobs = blob_cache(cache.directory / "blobs") if settings.model_compile else None
        if blobs is not None:
            core.set_property({"CACHE_DIR": str(blobs)})
        compile_started = time.perf_counter()
        compiled = compile_for_cpu(core, ir / "model.xml", precision, threads)
    except EngineUnavailable:
        raise
    except Exception as error:  # the CPU plugin refuses this machine, a broken install
        raise EngineUnavailable(f"OpenVINO failed to load the model: {error}") from error
    compile_seconds = time.perf_counter() - compile_started
    if precision != "int8":  # what runs, as OpenVINO reports it, not what was asked
        hint = str(compiled.get_property("INFERENCE_PRECISION_HINT")).lower()
        precision = "bf16" if ("bf16" in hint or "bfloat16" in hint) else "fp32"
    seconds = time.perf_counter() - started
    log.info("model loaded in %.2f s (OpenVINO %s, %s, IR %s, compiled in %.2f s)", seconds,
             ov.__version__, precision, "cached" if cache.hit else "built", compile_seconds)
    return OpenVinoEngine(compiled_model=compiled, precision=precision,
                          weights_name=source.name, load_seconds=seconds,
                          compile_seconds=compile_seconds)

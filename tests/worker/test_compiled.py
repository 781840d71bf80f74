"""The compiled model: built once (torch.export + AOTInductor), kept on disk, loaded
from there on the next start, and numerically the same as eager mode."""

import shutil

import pytest
import torch

from tests.support.images import PHOTOS
from tests.support.model_inputs import as_tensor, photo_crops
from worker.compiled import CompiledModelCache, cache_key, digest_path, file_digest
from worker.model import load_model
from worker.weights import WeightsSource

pytestmark = pytest.mark.compile

RANDOM = WeightsSource("random", None)


@pytest.fixture(scope="module")
def first_build(tmp_path_factory):
    """The one real compile of this module, into a cache directory of its own."""
    directory = tmp_path_factory.mktemp("compiled")
    cache = CompiledModelCache(directory, "random-seed-0", max_batch=4)
    return cache, load_model(RANDOM, "fp32", compiler=cache.compiler("fp32"))


@pytest.fixture()
def built_package(first_build):
    """A real compiled package with the digest recorded when it was built."""
    cache, _ = first_build
    package = cache.path_for("fp32")
    assert digest_path(package).read_text().strip() == file_digest(package)
    return package


def test_compile_once_then_load_from_the_cache(first_build):
    batch = as_tensor(photo_crops(PHOTOS[:3]))
    eager = load_model(RANDOM, "fp32").logits(batch)

    first, built = first_build
    directory = first.directory
    assert built.compiled and first.hit is False
    assert list(directory.glob("*.pt2")) == [first.path_for("fp32")]
    assert list(directory.glob("*.sha256")) == [digest_path(first.path_for("fp32"))]

    second = CompiledModelCache(directory, "random-seed-0", max_batch=4)
    loaded = load_model(RANDOM, "fp32", compiler=second.compiler("fp32"))
    assert loaded.compiled and second.hit is True
    print(f"compile {first.compile_seconds:.1f} s, load from cache {second.compile_seconds:.2f} s")
    assert second.compile_seconds < first.compile_seconds

    for model in (built, loaded):
        for size in (1, 3):  # one package serves every batch size up to the maximum
            logits = model.logits(batch[:size])
            torch.testing.assert_close(logits, eager[:size], rtol=1e-3, atol=1e-3)


def test_the_key_changes_with_what_the_code_depends_on():
    base = cache_key("w", "fp32", 8)
    assert base == cache_key("w", "fp32", 8)
    assert len({base, cache_key("w2", "fp32", 8), cache_key("w", "bf16", 8),
                cache_key("w", "fp32", 16)}) == 4


def test_a_failed_compile_falls_back_to_eager(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")  # the cache directory cannot be created
    cache = CompiledModelCache(blocker, "random-seed-0", max_batch=2)
    model = load_model(RANDOM, "fp32", compiler=cache.compiler("fp32"))
    assert not model.compiled
    assert model.logits(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)


class UncompilableModule(torch.nn.Module):
    """Stands for the model where a compile must not be needed, or must fail fast: a
    cache that loads a package returns its runner, one that does not returns this."""

    def forward(self, x):
        raise RuntimeError("export fails on this module")


def _copied(package, directory):
    directory.mkdir(mode=0o755, exist_ok=True)
    for path in (package, digest_path(package)):
        shutil.copy(path, directory / path.name)
    return CompiledModelCache(directory, "random-seed-0", max_batch=4)


def test_a_package_with_its_digest_is_loaded(built_package, tmp_path):
    cache = _copied(built_package, tmp_path / "cache")
    module = UncompilableModule()
    assert cache.compiler("fp32")(module) is not module and cache.hit is True


def test_a_package_that_no_longer_matches_its_digest_is_never_loaded(built_package, tmp_path):
    # A valid package swapped in after the build: its bytes are not the ones recorded.
    cache = _copied(built_package, tmp_path / "cache")
    digest_path(cache.path_for("fp32")).write_text("0" * 64 + "\n")
    module = UncompilableModule()
    assert cache.compiler("fp32")(module) is module  # compiled again (and here that fails)
    assert cache.hit is False


def test_a_package_without_a_recorded_digest_is_never_loaded(built_package, tmp_path):
    cache = _copied(built_package, tmp_path / "cache")
    digest_path(cache.path_for("fp32")).unlink()
    module = UncompilableModule()
    assert cache.compiler("fp32")(module) is module and cache.hit is False


def test_a_cache_anyone_may_write_is_never_loaded(built_package, tmp_path, caplog):
    cache = _copied(built_package, tmp_path / "cache")
    (tmp_path / "cache").chmod(0o777)
    module = UncompilableModule()
    assert cache.compiler("fp32")(module) is module
    assert "writable by every user" in caplog.text

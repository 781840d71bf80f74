"""The compiled model: built once (torch.export + AOTInductor), kept on disk, loaded
from there on the next start, and numerically the same as eager mode."""

import pytest
import torch

from tests.support.images import PHOTOS, encode, photo
from worker.compiled import CompiledModelCache, cache_key
from worker.model import load_model
from worker.preprocess import preprocess
from worker.weights import WeightsSource

pytestmark = pytest.mark.compile

RANDOM = WeightsSource("random", None)


def test_compile_once_then_load_from_the_cache(tmp_path):
    batch = torch.stack([preprocess(encode(photo(name).convert("RGB"), "JPEG"), 10**8)
                         for name in PHOTOS[:3]])
    eager = load_model(RANDOM, "fp32").logits(batch)

    first = CompiledModelCache(tmp_path, "random-seed-0", max_batch=4)
    built = load_model(RANDOM, "fp32", compiler=first.compiler("fp32"))
    assert built.compiled and first.hit is False
    assert list(tmp_path.glob("*.pt2")) == [first.path_for("fp32")]

    second = CompiledModelCache(tmp_path, "random-seed-0", max_batch=4)
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

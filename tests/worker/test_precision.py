"""bf16 against fp32 on real photos. With random weights (no pretrained weights can
be had here) this shows that bf16 keeps the network's numbers close, not that it
keeps ImageNet accuracy."""

import torch

from tests.support.images import PHOTOS
from tests.support.model_inputs import as_tensor, photo_crops
from worker.model import load_model
from worker.weights import WeightsSource

RANDOM = WeightsSource("random", None)


def test_bf16_logits_match_fp32_on_real_photos():
    batch = as_tensor(photo_crops())
    fp32 = load_model(RANDOM, "fp32").logits(batch)
    bf16 = load_model(RANDOM, "bf16").logits(batch)
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape == (len(PHOTOS), 1000)
    cosine = torch.nn.functional.cosine_similarity(fp32, bf16, dim=1)
    print("bf16 vs fp32 cosine per photo:", [round(float(c), 5) for c in cosine])
    assert bool((cosine >= 0.99).all())
    assert torch.equal(fp32.argmax(dim=1), bf16.argmax(dim=1))


def test_random_weights_are_the_same_in_every_process():
    a, b = load_model(RANDOM, "fp32"), load_model(RANDOM, "fp32")
    assert torch.equal(a.module.fc.weight, b.module.fc.weight)
    # and drawing them leaves the caller's random stream alone
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    load_model(RANDOM, "fp32")
    assert torch.equal(torch.rand(1), expected)

import math

import numpy as np
import pytest
import torch
from torchvision.models import ResNet50_Weights, resnet50

from tests.support.images import jpeg
from worker.batch_pipeline import BatchPipeline
from worker.batching import Batcher
from worker.classifier import Classifier
from worker.model import load_model
from worker.preprocess import preprocess
from worker.torch_engine import TorchEngine
from worker.weights import WeightsSource, WeightsUnavailable, resolve_weights


@pytest.fixture(scope="module")
def random_model():
    return load_model(WeightsSource("random", None), "fp32")


@pytest.fixture(scope="module")
def classifier(random_model):
    engine = TorchEngine(model=random_model, compile_seconds=0.0)
    pipeline = BatchPipeline(lambda data: preprocess(data, 10**8), engine.infer, threads=1)
    batcher = Batcher(pipeline, max_size=4, max_wait_seconds=0.01)
    yield Classifier(engine, batcher)
    batcher.stop()


def test_state_dict_file_is_loaded(tmp_path):
    reference = resnet50(weights=None)
    torch.nn.init.normal_(reference.fc.weight, std=0.5)
    path = tmp_path / "my-resnet50.pth"
    torch.save(reference.state_dict(), path)

    source = resolve_weights(str(path))
    model = load_model(source, "fp32")
    assert model.weights_name == "my-resnet50.pth"
    assert TorchEngine(model=model, compile_seconds=0.0).info() == {
        "name": "resnet50", "weights": "my-resnet50.pth", "precision": "fp32", "engine": "torch"}
    assert torch.equal(model.module.fc.weight, reference.fc.weight)
    assert model.module.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not model.module.training


def test_random_weights_say_so():
    assert resolve_weights("random") == WeightsSource("random", None)


def test_imagenet_missing_offline_says_how_to_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsUnavailable) as caught:
        resolve_weights("imagenet", download=False)
    message = str(caught.value)
    assert str(tmp_path) in message and "MODEL_WEIGHTS=random" in message


def test_imagenet_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    from worker.weights import imagenet_cache_path

    path = imagenet_cache_path()
    path.parent.mkdir(parents=True)
    torch.save(resnet50(weights=None).state_dict(), path)
    source = resolve_weights("imagenet", download=False)
    assert (source.name, source.path) == ("IMAGENET1K_V2", path)
    assert path.name == ResNet50_Weights.IMAGENET1K_V2.url.rsplit("/", 1)[1]


def test_classifier_returns_ordered_softmax_top_k(classifier):
    result = classifier.classify(jpeg(), top_k=7)
    predictions = result.predictions
    assert len(predictions) == 7
    scores = [p["score"] for p in predictions]
    assert scores == sorted(scores, reverse=True)
    assert all(0 <= s <= 1 for s in scores) and sum(scores) <= 1 + 1e-6
    categories = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
    assert all(categories[p["class_id"]] == p["label"] for p in predictions)
    assert result.model["weights"] == "random"
    assert result.preprocess_ms >= 0 and result.inference_ms > 0
    assert result.batch_size == 1


def test_scores_are_the_softmax_of_the_logits(classifier):
    logits = np.array([0.0] * 997 + [1.0, 2.0, 3.0], dtype=np.float32)
    top = classifier.top_k(logits, 3)
    denominator = 997 + math.e + math.e**2 + math.e**3
    assert [p["class_id"] for p in top] == [999, 998, 997]
    assert top[0]["score"] == pytest.approx(math.e**3 / denominator)


def test_weights_constants_are_torchvisions_and_torch_hubs(tmp_path, monkeypatch):
    # worker.weights restates them so that the OpenVINO path never imports torch.
    import torch.hub

    from worker.weights import IMAGENET_NAME, IMAGENET_URL, hub_dir

    weights = ResNet50_Weights.IMAGENET1K_V2
    assert (IMAGENET_NAME, IMAGENET_URL) == (weights.name, weights.url)
    for env in ({"TORCH_HOME": str(tmp_path / "th")}, {"XDG_CACHE_HOME": str(tmp_path / "x")},
                {}):
        monkeypatch.delenv("TORCH_HOME", raising=False)
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert str(hub_dir()) == torch.hub.get_dir()

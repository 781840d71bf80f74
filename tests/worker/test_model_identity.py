"""The model's identity, the result cache's key (worker/runtime.py): it changes with the
weights, the engine, the precision or the preprocessing, so that a cached result of
another model is never served; the same model on another worker has the same one."""

from types import SimpleNamespace

import worker.preprocess
from worker.runtime import model_identity
from worker.settings import WorkerSettings


def identity(weights: str = "random", engine: str = "openvino", precision: str = "fp32"):
    return model_identity(WorkerSettings.load(model_weights=weights),
                          SimpleNamespace(name=engine, precision=precision))


def test_the_identity_follows_weights_engine_precision_and_preprocessing(tmp_path,
                                                                         monkeypatch):
    base = identity()
    assert identity() == base  # the same model, another worker
    weights = tmp_path / "tuned.pth"
    weights.write_bytes(b"a state_dict")
    retuned = tmp_path / "retuned.pth"
    retuned.write_bytes(b"another state_dict")
    others = {identity(engine="torch"), identity(precision="bf16"), identity(precision="int8"),
              identity(weights=str(weights)), identity(weights=str(retuned))}
    monkeypatch.setattr(worker.preprocess, "PREPROCESS_VERSION", "2")
    others.add(identity())
    assert base not in others and len(others) == 6

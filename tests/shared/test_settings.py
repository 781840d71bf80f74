"""Settings per tier over a common base (shared/settings.py, web/settings.py,
worker/settings.py, Flower's in shared/flower_main.py): each tier reads and validates
only what it uses, from the same plain variable names."""

import pytest

from shared.flower_main import FlowerSettings
from shared.settings import CommonSettings, SettingsError
from web.settings import WebSettings
from worker.settings import Precision, WorkerSettings

TIERS = (WebSettings, WorkerSettings, FlowerSettings)


def test_defaults_match_the_docs(monkeypatch):
    for name in ("REDIS_URL", "QUEUE_NAME", "PORT", "MODEL_WEIGHTS", "MODEL_PRECISION",
                 "WAIT_MAX_SECONDS", "FLOWER_PORT"):
        monkeypatch.delenv(name, raising=False)
    web, worker, flower = (tier.load() for tier in TIERS)
    for settings in (web, worker, flower):
        assert settings.redis_url == "redis://localhost:6379/0"
        assert settings.queue_name == "resq"
    assert (web.port, web.wait_max_seconds) == (8000, 30)
    assert flower.flower_port == 5555
    assert worker.model_weights == "imagenet"
    assert worker.model_precision is Precision.AUTO


def test_each_tier_reads_its_own_variables(monkeypatch):
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("MODEL_PRECISION", "bf16")
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "2048")
    monkeypatch.setenv("QUEUE_NAME", "shared-queue")
    web, worker = WebSettings.load(), WorkerSettings.load()
    assert (web.port, web.max_upload_bytes, web.queue_name) == (9001, 2048, "shared-queue")
    assert (worker.model_precision, worker.queue_name) == (Precision.BF16, "shared-queue")
    assert not hasattr(web, "model_precision") and not hasattr(worker, "port")


def test_one_clear_line_per_bad_value(monkeypatch):
    monkeypatch.setenv("PORT", "eighty")
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "lots")
    monkeypatch.setenv("REDIS_URL", "http://localhost")
    with pytest.raises(SettingsError) as caught:
        WebSettings.load()
    lines = str(caught.value).splitlines()[1:]
    assert len(lines) == 3
    assert any(line.startswith("PORT:") and "'eighty'" in line for line in lines)
    assert any(line.startswith("MAX_UPLOAD_BYTES:") and "'lots'" in line for line in lines)
    assert any(line.startswith("REDIS_URL:") and "redis://" in line for line in lines)


def test_a_workers_bad_value_stops_the_worker_alone(monkeypatch):
    """MODEL_PRECISION and MODEL_WEIGHTS are the worker's: a bad one stops a worker
    with its line, and the web tier and Flower still start."""
    monkeypatch.setenv("MODEL_PRECISION", "fp8")
    monkeypatch.setenv("MODEL_WEIGHTS", " ")
    with pytest.raises(SettingsError) as caught:
        WorkerSettings.load()
    lines = str(caught.value).splitlines()[1:]
    assert any(line.startswith("MODEL_PRECISION:") and "'fp8'" in line for line in lines)
    assert any(line.startswith("MODEL_WEIGHTS:") and "state_dict" in line for line in lines)
    assert WebSettings.load().queue_name and FlowerSettings.load().queue_name


def test_a_weights_file_only_workers_have_does_not_stop_the_other_tiers(monkeypatch):
    """The chart and compose give every tier the same common settings, and a weights
    file is mounted on workers only: the worker checks the file itself
    (tests/worker/test_worker_process.py), the other tiers never read it."""
    monkeypatch.setenv("MODEL_WEIGHTS", "/mnt/weights/resnet50-finetuned.pth")
    assert WorkerSettings.load().model_weights == "/mnt/weights/resnet50-finetuned.pth"
    WebSettings.load(), FlowerSettings.load()


@pytest.mark.parametrize("value", ["alice", "alice:", ":secret"])
def test_flower_auth_needs_user_and_password(monkeypatch, value):
    monkeypatch.setenv("FLOWER_BASIC_AUTH", value)
    with pytest.raises(SettingsError, match="FLOWER_BASIC_AUTH"):
        FlowerSettings.load()
    WebSettings.load()  # not the web tier's concern


def test_the_tiers_share_only_the_common_fields():
    common = set(CommonSettings.model_fields)
    web, worker, flower = (set(tier.model_fields) - common for tier in TIERS)
    assert not (web & worker) and not (web & flower) and not (worker & flower)

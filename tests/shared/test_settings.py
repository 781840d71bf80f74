import pytest

from shared.settings import Precision, SettingsError, load_settings


def test_defaults_match_the_readme(monkeypatch):
    for name in ("REDIS_URL", "QUEUE_NAME", "PORT", "MODEL_WEIGHTS", "MODEL_PRECISION",
                 "WAIT_MAX_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.queue_name == "resq"
    assert settings.port == 8000
    assert settings.flower_port == 5555
    assert settings.model_weights == "imagenet"
    assert settings.model_precision is Precision.AUTO
    assert settings.wait_max_seconds == 30


def test_reads_the_environment(monkeypatch):
    monkeypatch.setenv("PORT", "9001")
    monkeypatch.setenv("MODEL_PRECISION", "bf16")
    monkeypatch.setenv("MAX_UPLOAD_BYTES", "2048")
    settings = load_settings()
    assert (settings.port, settings.model_precision, settings.max_upload_bytes) == \
        (9001, Precision.BF16, 2048)


def test_one_clear_line_per_bad_value(monkeypatch):
    monkeypatch.setenv("PORT", "eighty")
    monkeypatch.setenv("MODEL_PRECISION", "fp8")
    monkeypatch.setenv("REDIS_URL", "http://localhost")
    monkeypatch.setenv("MODEL_WEIGHTS", " ")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    lines = str(caught.value).splitlines()[1:]
    assert len(lines) == 4
    assert any(line.startswith("PORT:") and "'eighty'" in line for line in lines)
    assert any(line.startswith("MODEL_PRECISION:") and "'fp8'" in line for line in lines)
    assert any(line.startswith("REDIS_URL:") and "redis://" in line for line in lines)
    assert any(line.startswith("MODEL_WEIGHTS:") and "state_dict" in line for line in lines)


def test_a_weights_file_only_workers_have_does_not_stop_the_other_tiers(monkeypatch):
    """The chart and compose give every tier the same settings, and a weights file is
    mounted on workers only: the web tier and Flower must start without it (the
    worker checks the file itself, tests/worker/test_worker_process.py)."""
    monkeypatch.setenv("MODEL_WEIGHTS", "/mnt/weights/resnet50-finetuned.pth")
    assert load_settings().model_weights == "/mnt/weights/resnet50-finetuned.pth"


@pytest.mark.parametrize("value", ["alice", "alice:", ":secret"])
def test_flower_auth_needs_user_and_password(monkeypatch, value):
    monkeypatch.setenv("FLOWER_BASIC_AUTH", value)
    with pytest.raises(SettingsError, match="FLOWER_BASIC_AUTH"):
        load_settings()

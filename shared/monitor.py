"""`python -m shared.monitor`: runs Flower on the resq queue, never open without
auth: with `FLOWER_BASIC_AUTH` it listens on every interface behind HTTP basic
auth; without, only on 127.0.0.1. `make run`, the compose file and the chart all
start Flower through here."""

from __future__ import annotations

import os
import sys

from shared.settings import Settings, SettingsError, get_settings


def flower_args(settings: Settings) -> list[str]:
    args = ["-A", "shared.monitor_app", "flower", f"--port={settings.flower_port}"]
    if settings.flower_basic_auth:
        args += ["--address=0.0.0.0", f"--basic-auth={settings.flower_basic_auth}"]
    else:
        args += ["--address=127.0.0.1"]
    return args


def main() -> int:
    try:
        settings = get_settings()
    except SettingsError as error:
        print(f"resq flower: {error}", file=sys.stderr)
        return 2
    celery = os.path.join(os.path.dirname(sys.executable), "celery")
    os.execv(celery, [celery, *flower_args(settings)])


if __name__ == "__main__":
    sys.exit(main())

"""`python -m shared.monitor`: runs Flower on the resq queue, never without auth.
With `FLOWER_BASIC_AUTH` it listens on every interface behind those credentials;
without, it makes up a one-time password for the user `resq`, prints it, and
listens on 127.0.0.1 only. `make run`, the compose file and the chart all start
Flower through here."""

from __future__ import annotations

import os
import secrets
import sys

from shared.settings import Settings, settings_or_exit

ONE_TIME_USER = "resq"


def flower_args(settings: Settings, one_time_password: str) -> list[str]:
    args = ["-A", "shared.monitor_app", "flower", f"--port={settings.flower_port}"]
    if settings.flower_basic_auth:
        return args + ["--address=0.0.0.0", f"--basic-auth={settings.flower_basic_auth}"]
    return args + ["--address=127.0.0.1",
                   f"--basic-auth={ONE_TIME_USER}:{one_time_password}"]


def main() -> int:
    settings = settings_or_exit("resq flower")
    password = secrets.token_urlsafe(12)
    if not settings.flower_basic_auth:
        print(f"resq flower: http://127.0.0.1:{settings.flower_port} user {ONE_TIME_USER} "
              f"password {password} (set FLOWER_BASIC_AUTH to choose)", file=sys.stderr,
              flush=True)
    celery = os.path.join(os.path.dirname(sys.executable), "celery")
    os.execv(celery, [celery, *flower_args(settings, password)])


if __name__ == "__main__":
    sys.exit(main())

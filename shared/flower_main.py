"""`python -m shared.flower_main`: runs Flower on the resq queue, never without auth.
With `FLOWER_BASIC_AUTH` it listens on every interface behind those credentials;
without, it makes up a one-time password for the user `resq`, prints it, and
listens on 127.0.0.1 only. The credentials reach Flower through its environment
(`FLOWER_BASIC_AUTH`, which Flower reads itself), never its command line, which
any user of the machine can read (`ps`). `make run`, the compose file and the
chart all start Flower through here."""

from __future__ import annotations

import os
import secrets
import sys

from pydantic import Field, field_validator

from shared.settings import CommonSettings

ONE_TIME_USER = "resq"


class FlowerSettings(CommonSettings):
    """Flower's: its port and its basic auth (besides the queue it watches)."""

    flower_basic_auth: str = ""
    """`user:password[,user2:password2]` required by Flower; empty means Flower is
    started only on 127.0.0.1 (never without auth on other interfaces)."""

    flower_port: int = Field(5555, ge=1, le=65535)
    """TCP port of Flower, the Celery monitor."""

    @field_validator("flower_basic_auth")
    @classmethod
    def _basic_auth(cls, value: str) -> str:
        for pair in filter(None, value.split(",")):
            user, sep, password = pair.partition(":")
            if not sep or not user or not password:
                raise ValueError("must be `user:password` pairs separated by commas")
        return value


def flower_args(settings: FlowerSettings) -> list[str]:
    """Flower's command line. Left to itself, Flower tells every worker to send task
    events, again every 5 s (`--enable_events`, on by default), which would undo
    `TASK_EVENTS=false` and its 9 ms a job wherever Flower runs; so it does that
    only when `TASK_EVENTS` asks."""
    address = "0.0.0.0" if settings.flower_basic_auth else "127.0.0.1"
    return ["-A", "shared.flower_app", "flower", f"--port={settings.flower_port}",
            f"--address={address}", f"--enable_events={str(settings.task_events).lower()}"]


def flower_env(settings: FlowerSettings, one_time_password: str) -> dict[str, str]:
    """Flower's environment: the credentials it asks for, and nothing it would
    misread (Flower takes every `FLOWER_<option>` variable as an option)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    env["FLOWER_BASIC_AUTH"] = (settings.flower_basic_auth
                                or f"{ONE_TIME_USER}:{one_time_password}")
    return env


def main() -> int:
    settings = FlowerSettings.or_exit("resq flower")
    password = secrets.token_urlsafe(12)
    if not settings.flower_basic_auth:
        print(f"resq flower: http://127.0.0.1:{settings.flower_port} user {ONE_TIME_USER} "
              f"password {password} (set FLOWER_BASIC_AUTH to choose)", file=sys.stderr,
              flush=True)
    celery = os.path.join(os.path.dirname(sys.executable), "celery")
    os.execve(celery, [celery, *flower_args(settings)], flower_env(settings, password))


if __name__ == "__main__":
    sys.exit(main())

"""The web tier's services, built once by `create_app` and read by the blueprints
through `services()`: one typed container instead of string keys in
`app.extensions`."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from web.auth import ApiKeys
from web.batch_intake import BatchIntake
from web.batch_service import BatchService
from web.body_budget import BodyBudget
from web.intake import Intake
from web.job_service import JobService
from web.settings import WebSettings
from web.wait_slots import WaitSlots

EXTENSION = "resq"


@dataclass(frozen=True)
class Services:
    settings: WebSettings
    jobs: JobService
    """Submit, read, wait for and cancel jobs (Redis and the queue behind it)."""
    intake: Intake
    """Reads and checks the three input forms."""
    batches: BatchService
    """Create, read and cancel batches."""
    batch_intake: BatchIntake
    """Reads and checks a batch's three forms."""
    wait_slots: WaitSlots
    """How many requests of this process (and of one key) may hold a wait."""
    body_budget: BodyBudget
    """Bytes of request bodies this process may hold at once."""
    api_keys: ApiKeys
    openapi: dict
    """The OpenAPI document served at /openapi.json."""

    def install(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self


def services(app: Flask | None = None) -> Services:
    """The services of `app`, by default the app handling this request."""
    return (app or current_app).extensions[EXTENSION]

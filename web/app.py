"""The app factory of the web tier (see `web/__init__.py`)."""

from __future__ import annotations

import logging

from flask import Flask

from shared import __version__
from shared.celery_app import make_celery
from shared.dns_resolver import DnsResolver
from shared.job_data.keys import QueueKeys
from shared.patches import refuse_decompression_bombs
from shared.queue_metrics import QueueCollector
from shared.redis_client import RedisTarget, connect
from shared.url_fetch import UrlFetcher
from shared.url_guard import AddressPolicy
from web import metrics
from web.auth import ApiKeys
from web.batch_intake import BatchIntake
from web.batch_service import BatchService
from web.blueprints import batches, docs, jobs, page, probes, scaling
from web.body_budget import BodyBudget, InMemoryFileRequest
from web.errors import register_error_handlers
from web.intake import Intake
from web.job_service import JobService
from web.openapi import build_openapi
from web.rate_limits import install_rate_limits
from web.result_waiter import ResultWaiter
from web.services import Services
from web.settings import WebSettings
from web.wait_slots import WaitSlots

# Room for the multipart envelope around an image of the maximum size.
MULTIPART_OVERHEAD = 64 * 1024
# Largest non-file form field (only `top_k` is expected). werkzeug buffers parts in
# 64 KiB reads and applies this limit to that buffer too, so it must stay well
# above one read or every file part over 64 KiB is refused.
MAX_FORM_FIELD_BYTES = 1024 * 1024


def create_app(settings: WebSettings | None = None) -> Flask:
    settings = settings or WebSettings.current()
    refuse_decompression_bombs()
    app = Flask(__name__, static_folder=None)
    app.request_class = InMemoryFileRequest
    app.config.update(
        MAX_CONTENT_LENGTH=settings.max_upload_bytes + MULTIPART_OVERHEAD,
        MAX_FORM_MEMORY_SIZE=MAX_FORM_FIELD_BYTES,
        RESQ_MAX_UPLOAD_BYTES=settings.max_upload_bytes,
        RESQ_WAIT_MAX_SECONDS=settings.wait_max_seconds,
    )
    app.json.sort_keys = False  # fields in the order the models declare them
    logging.getLogger("web").setLevel(settings.log_level)

    redis = RedisTarget.of(settings)
    client = connect(redis)
    keys = ApiKeys(settings.api_keys.get_secret_value())
    job_service = JobService(settings, make_celery(settings), client, ResultWaiter(client))
    intake = Intake(
        max_upload_bytes=settings.max_upload_bytes,
        max_image_pixels=settings.max_image_pixels,
        max_decode_bytes=settings.max_decode_bytes,
        fetcher=UrlFetcher(max_bytes=settings.max_upload_bytes,
                           timeout_seconds=settings.url_fetch_timeout_seconds,
                           policy=AddressPolicy(settings.url_fetch_allow_networks,
                                                settings.url_fetch_allow_ports),
                           resolver=DnsResolver(settings.dns_nameservers,
                                                per_zone=settings.dns_lookups_per_zone,
                                                wait_for_slot=True)),
        webhooks_enabled=settings.webhooks_on,
        webhook_http_networks=settings.webhook_http_networks,
    )
    built = Services(
        settings=settings,
        jobs=job_service,
        intake=intake,
        batches=BatchService(job_service),
        batch_intake=BatchIntake(intake, max_items=settings.batch_max_items,
                                 max_bytes=settings.batch_max_bytes),
        wait_slots=WaitSlots.for_threads(settings.web_threads, settings.wait_max_concurrent,
                                         settings.wait_max_per_key),
        body_budget=BodyBudget(settings.upload_budget_bytes),
        api_keys=keys,
        openapi=build_openapi(__version__),
    )
    built.install(app)
    install_rate_limits(app, jobs.bp, settings.rate_limit, redis,
                        QueueKeys(settings.queue_name).rate_limits, keys,
                        per_request=(batches.bp,))

    for blueprint in (jobs.bp, batches.bp, probes.bp, scaling.bp, docs.bp, page.bp):
        app.register_blueprint(blueprint)
    register_error_handlers(app)
    metrics.install(app, QueueCollector(client, settings.queue_name))
    return app

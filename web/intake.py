"""Reads `POST /jobs` into a `Submission`: the image bytes, how they came and the
options, whichever of the three input forms the client used."""

from __future__ import annotations

import json
from dataclasses import dataclass

from flask import Request
from pydantic import BaseModel, ValidationError

from shared.api_models import InputForm, SubmitOptions, UrlSubmission
from shared.errors import (
    BadRequest,
    BadUrl,
    InvalidField,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from shared.images import ACCEPTED_MEDIA_TYPES, inspect_image
from shared.pinned_http import Deadline, DeadlineExceeded, check_plain_http, url_parts, within
from shared.url_fetch import UrlFetcher
from web.body_budget import MAX_JSON_BODY_BYTES
from web.idempotency import fingerprint

# Most `image` parts in one multipart request (the body's size limit holds too).
MAX_IMAGES_PER_REQUEST = 32


@dataclass(frozen=True)
class Submission:
    image: bytes
    form: InputForm
    options: SubmitOptions
    url: str | None = None

    def fingerprint(self) -> str:
        return fingerprint(self.form.value, self.image, self.url, self.options)


def validate(model: type[BaseModel], data: dict) -> BaseModel:
    """Validate `data` against `model`, or raise `InvalidField` naming each field."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        details = [
            {"field": ".".join(str(p) for p in item["loc"]) or "body", "message": item["msg"]}
            for item in error.errors()
        ]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        raise InvalidField(summary, details=details) from None


def read_json_object(request: Request, max_bytes: int, what: str, needs: str) -> dict:
    """`request`'s body as a JSON object of at most `max_bytes` (413 past it, 400 for
    what is not JSON, 422 for JSON that is not an object with `needs`)."""
    data = request.stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"a JSON body ({what}) is at most {max_bytes} bytes")
    try:
        body = json.loads(data or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidField(f"body: a JSON object with {needs} is required",
                           details=[{"field": "body", "message": "must be an object"}])
    return body


def query_options(request: Request) -> dict:
    """The job options given in the query string (a JSON body's fields win over them)."""
    return {k: v for k, v in request.args.items() if k in SubmitOptions.model_fields}


class Intake:
    def __init__(self, *, max_upload_bytes: int, max_image_pixels: int, fetcher: UrlFetcher,
                 max_decode_bytes: int | None = None, webhooks_enabled: bool = False,
                 webhook_http_networks: tuple = ()):
        self.max_upload_bytes = max_upload_bytes
        self.max_image_pixels = max_image_pixels
        self.max_decode_bytes = max_decode_bytes
        self.fetcher = fetcher
        self.webhooks_enabled = webhooks_enabled
        self.webhook_http_networks = webhook_http_networks

    def read(self, request: Request) -> list[Submission]:
        """One submission per image: several only for a multipart body with several
        `image` parts (each checked as if it came alone)."""
        mimetype = request.mimetype
        url = None
        if mimetype == "multipart/form-data":
            images, options, form = (self._multipart(request), self.options(request, request.form),
                                     InputForm.MULTIPART)
        elif mimetype.startswith("image/"):
            if mimetype not in ACCEPTED_MEDIA_TYPES:
                raise UnsupportedMediaType(
                    f"{mimetype} is not an accepted image type; send one of "
                    + ", ".join(sorted(ACCEPTED_MEDIA_TYPES)))
            images, form = [request.get_data(cache=False)], InputForm.RAW
            options = self.options(request)
        elif mimetype == "application/json":
            image, options, form, url = self._url(request)
            images = [image]
        else:
            raise UnsupportedMediaType(
                f"content type {mimetype or '(none)'} is not accepted; send multipart/form-data "
                "with `image` files, an image/* body, or application/json with a `url`")
        if options.webhook is not None:
            self.check_webhook(options.webhook)
        submissions = []
        for image in images:
            self.check_image(image)
            submissions.append(Submission(image=image, form=form, options=options, url=url))
        return submissions

    def check_webhook(self, url: str) -> None:
        """Webhooks must be on, and the URL one the SSRF guard lets through, over https
        (or plain http to `WEBHOOK_HTTP_NETWORKS`); all is checked again at each
        delivery."""
        if not self.webhooks_enabled:
            raise InvalidField("webhook: webhooks are off on this server (no WEBHOOK_SECRET)",
                               details=[{"field": "webhook", "message": "webhooks are off"}])
        scheme, host, port, _ = url_parts(url)
        lookup = within(Deadline(self.fetcher.timeout), self.fetcher.resolver)
        try:
            address = self.fetcher.policy.checked_address(host, port, lookup)
        except (OSError, DeadlineExceeded):  # the lookup's deadline (no thread left behind)
            raise BadUrl(f"the webhook's host {host!r} did not resolve within "
                         f"{self.fetcher.timeout:g} s") from None
        if scheme == "http":
            check_plain_http(address, self.webhook_http_networks)

    def options(self, request: Request, extra=None) -> SubmitOptions:
        data = dict(request.args.items())
        if extra:
            data.update({k: v for k, v in extra.items() if k in SubmitOptions.model_fields})
        return validate(SubmitOptions, data)

    def _multipart(self, request: Request) -> list[bytes]:
        files = request.files.getlist("image")
        if not files:
            raise InvalidField("image: a multipart file field named `image` is required",
                               details=[{"field": "image", "message": "required"}])
        if len(files) > MAX_IMAGES_PER_REQUEST:
            raise InvalidField(f"image: at most {MAX_IMAGES_PER_REQUEST} images per request",
                               details=[{"field": "image", "message": "too many files"}])
        images = [file.stream.read(self.max_upload_bytes + 1) for file in files]
        for file in files:
            file.close()  # the request keeps its parts: free their in-memory copies now
        return images

    def _url(self, request: Request) -> tuple[bytes, SubmitOptions, InputForm, str]:
        body = read_json_object(request, MAX_JSON_BODY_BYTES, "a URL and options",
                                "a `url` field")
        submission = validate(UrlSubmission, {**query_options(request), **body})
        options = SubmitOptions(top_k=submission.top_k, webhook=submission.webhook,
                                webhook_events=submission.webhook_events,
                                deadline_seconds=submission.deadline_seconds)
        url = str(submission.url)
        return self.fetcher.fetch(url), options, InputForm.URL, url

    def check_image(self, image: bytes) -> None:
        """Refuses an image over `MAX_UPLOAD_BYTES` (413), or one that is not a
        decodable image within the limits, from its header (`ImageError`)."""
        if len(image) > self.max_upload_bytes:
            raise PayloadTooLarge(f"the image is over the limit of {self.max_upload_bytes} bytes")
        inspect_image(image, self.max_image_pixels, self.max_decode_bytes)

"""Reads `POST /batches` into items, whichever of the three forms the client used:

- JSON `{"urls": [...], ...options}`: one item per URL, checked for its form here and
  fetched by a worker when its turn comes (never here, and never stored);
- multipart/form-data with many `image` parts (the options as fields or in the query);
- one zip or tar archive (`application/zip`, `application/x-tar`, `application/gzip`
  for a .tar.gz) of images, the options in the query; directories, links and hidden
  files (`.DS_Store`, `__MACOSX/`) are passed over.

Limits: at most `BATCH_MAX_ITEMS` items (422), a body of at most `BATCH_MAX_BYTES`
(413; a JSON body at most `MAX_BATCH_JSON_BYTES`), and each image at most
`MAX_UPLOAD_BYTES` and checked from its header as a job's is (413, 400) — an archive's
members by their declared sizes before a byte is inflated, and all of them together
within `BATCH_MAX_BYTES`, so no archive inflates past what a multipart body may hold.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from dataclasses import dataclass

from flask import Request

from shared.api_models import BatchUrlSubmission, InputForm, SubmitOptions
from shared.errors import (
    BadRequest,
    InvalidField,
    PayloadTooLarge,
    ResqError,
    UnsupportedMediaType,
)
from shared.job_data.batches import NewItem
from web.intake import Intake, query_options, read_json_object, validate

# Largest JSON body of a batch: 10,000 URLs of 400 characters.
MAX_BATCH_JSON_BYTES = 4 * 1024 * 1024
ZIP_TYPES = frozenset({"application/zip", "application/x-zip-compressed"})
TAR_TYPES = frozenset({"application/x-tar", "application/gzip", "application/x-gzip",
                       "application/x-gtar"})
ARCHIVE_TYPES = ZIP_TYPES | TAR_TYPES


@dataclass(frozen=True)
class BatchSubmission:
    items: list[NewItem]
    options: SubmitOptions
    form: InputForm

    def fingerprint(self) -> str:
        """What `Idempotency-Key` compares: the form, each item (its URL, or its
        name and its image's SHA-256) in order, and every option."""
        digest = hashlib.sha256(f"batch\0{self.form.value}\0".encode())
        for item in self.items:
            what = item.url if item.url is not None else \
                f"{item.input}\0" + hashlib.sha256(item.image or b"").hexdigest()
            digest.update(what.encode() + b"\0")
        digest.update(self.options.model_dump_json().encode())
        return digest.hexdigest()


def _hidden(name: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in name.split("/"))


class BatchIntake:
    def __init__(self, intake: Intake, *, max_items: int, max_bytes: int):
        self.intake = intake  # a job's checks: options, webhooks, images
        self.max_items = max_items
        self.max_bytes = max_bytes

    def max_body_bytes(self, request: Request) -> int:
        return MAX_BATCH_JSON_BYTES if request.mimetype == "application/json" \
            else self.max_bytes

    def read(self, request: Request) -> BatchSubmission:
        mimetype = request.mimetype
        request.max_content_length = self.max_body_bytes(request)
        if mimetype == "application/json":
            submission = self._urls(request)
        elif mimetype == "multipart/form-data":
            request.max_form_parts = self.max_items + 16
            submission = BatchSubmission(self._multipart(request),
                                         self.intake.options(request, request.form),
                                         InputForm.MULTIPART)
        elif mimetype in ARCHIVE_TYPES:
            submission = BatchSubmission(self._archive(request, mimetype),
                                         self.intake.options(request), InputForm.MULTIPART)
        else:
            raise UnsupportedMediaType(
                f"content type {mimetype or '(none)'} is not accepted for a batch; send "
                "application/json with `urls`, multipart/form-data with `image` files, or "
                "a zip or tar archive of images")
        if submission.options.webhook is not None:
            self.intake.check_webhook(submission.options.webhook)
        return submission

    def _too_many(self, count: int) -> InvalidField:
        return InvalidField(f"a batch holds at most {self.max_items} items; this one has "
                            f"{count}", details=[{"field": "items",
                                                  "message": f"at most {self.max_items}"}])

    def _urls(self, request: Request) -> BatchSubmission:
        body = read_json_object(request, MAX_BATCH_JSON_BYTES, "a batch's URLs and options",
                                "a `urls` list")
        if isinstance(body.get("urls"), list) and len(body["urls"]) > self.max_items:
            raise self._too_many(len(body["urls"]))
        submission = validate(BatchUrlSubmission, {**query_options(request), **body})
        options = SubmitOptions(**submission.model_dump(exclude={"urls"}))
        return BatchSubmission([NewItem(input=url, url=url) for url in submission.urls],
                               options, InputForm.URL)

    def _multipart(self, request: Request) -> list[NewItem]:
        files = request.files.getlist("image")
        if not files:
            raise InvalidField("image: a multipart file field named `image` is required",
                               details=[{"field": "image", "message": "required"}])
        if len(files) > self.max_items:
            raise self._too_many(len(files))
        items = []
        for index, file in enumerate(files):
            image = file.stream.read(self.intake.max_upload_bytes + 1)
            file.close()  # the request keeps its parts: free their copies now
            items.append(self._item(index, file.filename or f"image-{index}", image))
        return items

    def _archive(self, request: Request, mimetype: str) -> list[NewItem]:
        body = request.stream.read(self.max_bytes + 1)
        if len(body) > self.max_bytes:
            raise PayloadTooLarge(f"a batch's body is at most {self.max_bytes} bytes")
        try:
            members = (self._zip(body) if mimetype in ZIP_TYPES else self._tar(body))
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError):
            raise BadRequest(f"the body is not a readable {mimetype} archive") from None
        if not members:
            raise InvalidField("the archive holds no image files",
                               details=[{"field": "archive", "message": "no files"}])
        return [self._item(index, name, image) for index, (name, image) in enumerate(members)]

    def _check_member(self, name: str, size: int, count: int, total: int) -> None:
        if count > self.max_items:
            raise self._too_many(count)
        if size > self.intake.max_upload_bytes:
            raise PayloadTooLarge(f"{name}: over the limit of {self.intake.max_upload_bytes} "
                                  "bytes an image")
        if total > self.max_bytes:
            raise PayloadTooLarge(f"the archive's files come to more than the {self.max_bytes} "
                                  "bytes a batch may hold")

    def _zip(self, body: bytes) -> list[tuple[str, bytes]]:
        members, total = [], 0
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            for info in archive.infolist():
                if info.is_dir() or _hidden(info.filename):
                    continue
                total += info.file_size
                self._check_member(info.filename, info.file_size, len(members) + 1, total)
                with archive.open(info) as member:
                    data = member.read(info.file_size + 1)
                if len(data) != info.file_size:  # its header lied about its size
                    raise BadRequest(f"{info.filename}: its size is not what the archive "
                                     "says")
                members.append((info.filename, data))
        return members

    def _tar(self, body: bytes) -> list[tuple[str, bytes]]:
        members, total = [], 0
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as archive:
            for info in archive:
                if not info.isfile() or _hidden(info.name):
                    continue
                total += info.size
                self._check_member(info.name, info.size, len(members) + 1, total)
                members.append((info.name, archive.extractfile(info).read(info.size)))
        return members

    def _item(self, index: int, name: str, image: bytes) -> NewItem:
        """An uploaded image, checked as a job's is; a refusal names the item."""
        try:
            self.intake.check_image(image)
        except ResqError as error:
            error.message = f"item {index} ({name}): {error.message}"
            error.details = [{"field": f"image[{index}]", "message": error.message}]
            raise
        return NewItem(input=name, image=image)


"""JSON for the errors gunicorn answers itself, before Flask sees the request (a
request line or header over gunicorn's limits, a malformed request): the same
`{"error": {"code", "message"}}` body as every other resq error, not an HTML page.

gunicorn writes these through `gunicorn.util.write_error`; `install()` (called by
`web.gunicorn_conf`) replaces that one function, through `shared.patches`.
"""

from __future__ import annotations

import json

import gunicorn.util

from shared.patches import gunicorn_json_errors

CODES = {400: "bad_request", 403: "forbidden", 414: "uri_too_long",
         417: "expectation_failed", 431: "request_header_fields_too_large",
         500: "internal_error", 501: "not_implemented"}


def error_bytes(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": {"code": CODES.get(status, "bad_request"),
                                 "message": message or reason}}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    gunicorn.util.write_nonblock(sock, error_bytes(status_int, reason, mesg))


def install() -> None:
    gunicorn_json_errors(write_json_error)

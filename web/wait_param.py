"""How long a request asked to wait: `?wait=true|<seconds>` or `Prefer: wait=<s>`."""

from __future__ import annotations

import math

from shared.errors import InvalidField

_TRUE = {"true", "yes"}
_FALSE = {"false", "no", ""}


def _parse(value: str, cap: float, field: str) -> float:
    text = value.strip().lower()
    if text in _TRUE:
        return cap
    if text in _FALSE:
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise InvalidField(f"{field}: must be true, false or a number of seconds ≥ 0",
                           details=[{"field": field, "message": "must be true, false or seconds"}])
    return min(seconds, cap)


def prefer_wait(header: str | None) -> str | None:
    """The `wait` preference of a `Prefer` header (RFC 7240), if any."""
    if not header:
        return None
    for preference in header.split(","):
        name, _, value = preference.split(";")[0].partition("=")
        if name.strip().lower() == "wait":
            return value.strip().strip('"')
    return None


def requested_wait(query_wait: str | None, prefer_header: str | None,
                   cap: float) -> tuple[float, bool]:
    """Seconds to wait (capped) and whether it came from `Prefer`."""
    if query_wait is not None:
        return _parse(query_wait, cap, "wait"), False
    preferred = prefer_wait(prefer_header)
    if preferred is not None:
        try:
            return _parse(preferred, cap, "Prefer: wait"), True
        except InvalidField:
            # RFC 7240: a preference the server cannot honour is ignored, not an error.
            return 0.0, False
    return 0.0, False

"""API keys: who is calling `/jobs`.

`API_KEYS` holds keys, or their SHA-256 (`sha256:<64 hex>`) so that the key itself
need not sit in the environment. A presented key is hashed and compared with every
configured digest in constant time (`hmac.compare_digest`, no early exit), so
neither timing nor the stored form gives a key away. A job belongs to the key that
made it: its *owner* is a short digest of the key, never the key.
"""

from __future__ import annotations

import hashlib
import hmac

from flask import Request, g, request

from shared.errors import Unauthorized

HASH_PREFIX = "sha256:"
OWNER_CHARS = 32


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_keys(setting: str) -> list[bytes]:
    """The SHA-256 digests of the configured keys (entries checked by `Settings`)."""
    digests = []
    for entry in filter(None, (part.strip() for part in setting.split(","))):
        if entry.startswith(HASH_PREFIX):
            digests.append(bytes.fromhex(entry[len(HASH_PREFIX):]))
        else:
            digests.append(digest(entry))
    return digests


def presented_key(request: Request) -> str | None:
    """`Authorization: Bearer <key>`, else `X-API-Key: <key>`."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-API-Key") or None


class ApiKeys:
    def __init__(self, setting: str):
        self.digests = parse_keys(setting)

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    def owner_of(self, request: Request) -> str | None:
        """The owner id of the request's key when the key is valid, else None."""
        key = presented_key(request)
        if key is None:
            return None
        presented = digest(key)
        matched = False
        for known in self.digests:  # every digest is compared: no early exit
            matched |= hmac.compare_digest(presented, known)
        return presented.hex()[:OWNER_CHARS] if matched else None


def authenticate() -> None:
    """A blueprint's `before_request` (`/jobs`, `/batches`): with `API_KEYS` set,
    every call needs a valid key; `g.owner` is the key's owner id (empty without
    keys)."""
    from web.services import services  # services imports this module

    keys = services().api_keys
    g.owner = ""
    if keys.enabled:
        owner = keys.owner_of(request)
        if owner is None:
            raise Unauthorized()
        g.owner = owner

"""Files a worker builds once and loads at every start (compiled packages, OpenVINO
IR): their recorded digests and the checks made before loading one. A cached
artefact is loaded only when its bytes match the digest recorded when this project
built it, and when no other user can have written it (owned by this user or root,
not world-writable): the cache path is predictable, so anything else could have
been planted there."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from pathlib import Path


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def digest_path(package: Path) -> Path:
    return package.with_name(package.name + ".sha256")


def untrusted_reason(path: Path) -> str | None:
    """Why `path` may have been written by someone else, or None: it is owned by
    another user than this one or root, or anyone may write it."""
    info = path.stat()
    if info.st_uid not in (os.getuid(), 0):
        return f"{path} is owned by uid {info.st_uid}"
    if info.st_mode & stat.S_IWOTH:  # sticky or not: anyone may create the next name
        return f"{path} is writable by every user"
    return None


def first_untrusted(paths) -> str | None:
    """The reason the first of `paths` that exists may have been written by someone
    else (see `untrusted_reason`), or None."""
    for path in paths:
        if path.exists():
            reason = untrusted_reason(path)
            if reason:
                return reason
    return None


def recorded_digest_matches(package: Path) -> bool:
    recorded = digest_path(package)
    if not recorded.is_file():
        return False
    return recorded.read_text().strip() == file_digest(package)


# Modes of what a cache writes: readable by every user (an image builds its cache as
# root and runs as another user), writable by the owner alone (what the trust checks
# require). mkdtemp and mkstemp make 0700 and 0600.
SHARED_DIRECTORY_MODE = 0o755
SHARED_FILE_MODE = 0o644


def write_atomically(target: Path, text: str) -> None:
    fd, partial = tempfile.mkstemp(dir=target.parent, suffix=".partial")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(partial, SHARED_FILE_MODE)
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)

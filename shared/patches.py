"""Every change resq makes to another library's behaviour, in one place.

Each is applied by an entry point (`web.gunicorn_conf`, `web.app.create_app`,
`python -m worker`, `shared.flower_app`), never as a side effect of importing a module
that merely uses it. Each patch checks that the library is a version it was written
against and that what it replaces still has the shape it expects, and raises
`PatchOutdated` otherwise: upgrading past a guard fails at start with a message that
names the patch, never quietly (an unguarded Flower patch would leave `/metrics` open).
`tests/shared/test_patches.py` applies each to the pinned library and fails when the
library changes under it.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable

# Major versions each patch was written against: [first, last].
GUNICORN_MAJORS = (23, 27)
FLOWER_MAJORS = (2, 2)
KOMBU_MAJORS = (5, 5)


class PatchOutdated(RuntimeError):
    """A patched library is not a version (or shape) its patch was written for."""


def _check_version(library: str, version: str, majors: tuple[int, int], patch: str) -> None:
    major = int(version.split(".")[0])
    if not majors[0] <= major <= majors[1]:
        raise PatchOutdated(f"{patch}: written for {library} {majors[0]}.x to {majors[1]}.x, "
                            f"found {version}; check shared/patches.py before upgrading")


def _check_parameters(function: Callable, expected: list[str], patch: str) -> None:
    found = list(inspect.signature(function).parameters)
    if found != expected:
        raise PatchOutdated(f"{patch}: expected {function.__qualname__}({', '.join(expected)}), "
                            f"found ({', '.join(found)})")


def gunicorn_json_errors(write_error: Callable) -> None:
    """gunicorn answers a request it refuses itself (a request line or header over its
    limits, a malformed request) through `gunicorn.util.write_error`, as an HTML page;
    resq answers every error as JSON (`web.gunicorn_errors.write_json_error`)."""
    import gunicorn
    import gunicorn.util

    patch = "JSON errors from gunicorn"
    _check_version("gunicorn", gunicorn.__version__, GUNICORN_MAJORS, patch)
    _check_parameters(gunicorn.util.write_error, ["sock", "status_int", "reason", "mesg"], patch)
    gunicorn.util.write_error = write_error


def flower_metrics_behind_auth() -> None:
    """Flower serves `/metrics` to anyone, even with basic auth on; this puts it behind
    the same check as every other page (Prometheus scrapes it with `basic_auth`). The
    health check stays open for probes."""
    import flower
    from flower.views.monitor import Metrics
    from tornado import web

    patch = "Flower's /metrics behind its auth"
    _check_version("flower", flower.__version__, FLOWER_MAJORS, patch)
    _check_parameters(Metrics.get, ["self"], patch)
    if not getattr(Metrics.get, "_resq_authenticated", False):
        Metrics.get = web.authenticated(Metrics.get)
        Metrics.get._resq_authenticated = True


def kombu_restore_after_its_connection_closed() -> None:
    """When a worker's broker connection breaks (a Redis failover, a restart), Celery
    closes it, and kombu's Redis channel, as it closes, hands its unacknowledged
    messages back. It needs a client for that, which it builds from its transport's
    connection; when that is already gone, kombu 5.7 raises AttributeError
    ('NoneType' object has no attribute 'hostname'), which Celery takes for an
    unrecoverable error: the worker dies on every failover. Then, those messages stay
    where they are (kombu's `unacked`): kombu's visibility timeout or resq's heartbeat
    (`worker.heartbeat`) hands them back, and a message of a job that has ended is
    dropped unrun."""
    import logging

    import kombu
    from kombu.transport import redis as kombu_redis

    patch = "kombu's restore of unacked messages once its connection is gone"
    _check_version("kombu", kombu.__version__, KOMBU_MAJORS, patch)
    _check_parameters(kombu_redis.QoS.restore_unacked, ["self", "client"], patch)
    original = kombu_redis.QoS.restore_unacked
    if getattr(original, "_resq_guarded", False):
        return

    def restore_unacked(self, client=None):
        channel = self.channel
        if (client is None and channel._pool is None
                and getattr(channel.connection, "client", None) is None):
            logging.getLogger("worker.patches").warning(
                "broker connection gone: %d unacknowledged messages are left for the "
                "heartbeat or the visibility timeout to hand back", len(self._delivered))
            return None
        return original(self, client)

    restore_unacked._resq_guarded = True
    restore_unacked.__wrapped__ = original
    kombu_redis.QoS.restore_unacked = restore_unacked


def refuse_decompression_bombs() -> None:
    """Pillow only warns about an image past its own pixel limit; make the warning an
    error in this process, a second net behind resq's explicit limit
    (`MAX_IMAGE_PIXELS`, checked from the header before any decode)."""
    from PIL import Image

    warnings.simplefilter("error", Image.DecompressionBombWarning)

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


def kombu_redis_channel_gone_safe() -> None:
    """When a worker's broker connection breaks (a Redis failover, a restart), Celery
    closes it and opens another. kombu 5.7's Redis channel of the old connection then
    still gets calls that need a Redis client, which it builds from its transport's
    connection, gone by then: as it closes, handing its unacknowledged messages back;
    and when a task that started before the break finishes, acknowledging its message.
    Both raise AttributeError ('NoneType' object has no attribute 'hostname' or
    'client'), which Celery takes for an unrecoverable error: the worker died on every
    failover. With the channel gone, those calls now leave the messages where they
    are (kombu's `unacked`): resq's heartbeat (`worker.heartbeat`) or the visibility
    timeout hands them back, and a message of a job that has ended is dropped unrun."""
    import functools
    import logging

    import kombu
    from kombu.transport import redis as kombu_redis

    patch = "kombu's Redis channel once its connection is gone"
    _check_version("kombu", kombu.__version__, KOMBU_MAJORS, patch)
    expected = {"restore_unacked": ["self", "client"], "ack": ["self", "delivery_tag"],
                "reject": ["self", "delivery_tag", "requeue"]}
    for name, parameters in expected.items():
        _check_parameters(getattr(kombu_redis.QoS, name), parameters, patch)
    log = logging.getLogger("worker.patches")

    def gone(qos) -> bool:
        channel = qos.channel
        return channel._pool is None and getattr(channel.connection, "client", None) is None

    for name in expected:
        original = getattr(kombu_redis.QoS, name)
        if getattr(original, "_resq_guarded", False):
            continue

        def guarded(self, *args, _original=original, _name=name, **kwargs):
            if gone(self) and not kwargs.get("client"):
                log.warning("broker connection gone: %s of %d unacknowledged messages left "
                            "to the heartbeat or the visibility timeout", _name,
                            len(self._delivered))
                return None
            return _original(self, *args, **kwargs)

        guarded = functools.wraps(original)(guarded)
        guarded._resq_guarded = True
        setattr(kombu_redis.QoS, name, guarded)


def refuse_decompression_bombs() -> None:
    """Pillow only warns about an image past its own pixel limit; make the warning an
    error in this process, a second net behind resq's explicit limit
    (`MAX_IMAGE_PIXELS`, checked from the header before any decode)."""
    from PIL import Image

    warnings.simplefilter("error", Image.DecompressionBombWarning)

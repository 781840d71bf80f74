"""shared/patches.py: each patch applies to the pinned library and does what it is
for; each guard refuses a library it was not written for. A patched library that
changes (a new major version, a renamed parameter) fails here first."""

import subprocess
import sys
import warnings

import pytest

from bench.stack import ROOT, base_env
from shared import patches


def run(code: str) -> subprocess.CompletedProcess:
    """In a fresh process: patches change process-wide state."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=base_env(),
                          capture_output=True, text=True, timeout=60)


def test_gunicorn_writes_its_own_errors_as_json():
    done = run("import gunicorn.util, socket\n"
               "from web import gunicorn_errors\n"
               "gunicorn_errors.install()\n"
               "a, b = socket.socketpair()\n"
               "gunicorn.util.write_error(a, 431, 'Too Large', 'header too long')\n"
               "a.close(); print(b.recv(4096).decode())")
    assert done.returncode == 0, done.stderr
    assert "Content-Type: application/json" in done.stdout
    assert '{"error": {"code": "request_header_fields_too_large", "message": ' \
           '"header too long"}}' in done.stdout


@pytest.mark.parametrize("then", ["close", "ack"])
def test_a_channel_whose_connection_is_gone_leaves_its_messages(redis_url, then):
    """kombu 5.7 raised AttributeError here (a worker's death on every failover): when
    the old channel closes (handing back its unacknowledged messages), or when a task
    that began before the break acknowledges its message. With the patch neither
    raises, and the message stays in `unacked` for the heartbeat to hand back. A real
    Redis; the state a broken connection leaves (the channel's pool dropped, its
    transport's client gone) is set by hand."""
    finish = ("ch.close()\n" if then == "close" else
              "ch._disconnect_pools(); ch.connection = None\nmessage.ack()\n")
    done = run("import kombu, sys, uuid\n"
               "import shared.patches as p\n"
               "if sys.argv[-1] == 'patched': p.kombu_redis_channel_gone_safe()\n"
               f"conn = kombu.Connection({redis_url!r})\n"
               "ch = conn.channel(); name = uuid.uuid4().hex\n"
               "q = kombu.Queue(name, routing_key=name); q(ch).declare()\n"
               "kombu.Producer(ch).publish({'x': 1}, routing_key=name)\n"
               "message = q(ch).get(no_ack=False)\n"
               "tag = message.delivery_tag\n"
               "conn.transport.client = None\n"
               + finish +
               "import redis; print(redis.Redis.from_url("
               f"{redis_url!r}).hexists('unacked', tag))")
    assert done.returncode != 0 and "AttributeError" in done.stderr  # unpatched: the crash
    patched = subprocess.run([sys.executable, "-c", done.args[2], "patched"], cwd=ROOT,
                             env=base_env(), capture_output=True, text=True, timeout=60)
    assert patched.returncode == 0, patched.stderr
    assert patched.stdout.split() == ["True"]


def test_flowers_metrics_need_its_auth():
    done = run("from flower.views.monitor import Metrics\n"
               "import shared.patches as p\n"
               "p.flower_metrics_behind_auth(); p.flower_metrics_behind_auth()\n"
               "print(Metrics.get._resq_authenticated, Metrics.get.__wrapped__.__name__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "get"]


def test_decompression_bombs_are_refused_in_the_process():
    done = run("import warnings\n"
               "from PIL import Image\n"
               "from shared.patches import refuse_decompression_bombs\n"
               "refuse_decompression_bombs()\n"
               "try:\n"
               "    warnings.warn('bomb', Image.DecompressionBombWarning)\n"
               "except Image.DecompressionBombWarning:\n"
               "    print('refused')")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "refused"


def test_importing_the_libraries_users_changes_nothing():
    """No import-time effects: importing the modules that use the patches leaves
    gunicorn, Flower and Pillow's warnings as they were (numpy and urllib3 add
    filters of their own on import; ours are set by entry points)."""
    done = run("import warnings; from PIL import Image\n"
               "import gunicorn.util; from flower.views.monitor import Metrics\n"
               "original = (gunicorn.util.write_error, Metrics.get)\n"
               "import shared.images, web.gunicorn_errors, web.app, worker.preprocess\n"
               "print((gunicorn.util.write_error, Metrics.get) == original, not any("
               "f[2] is Image.DecompressionBombWarning for f in warnings.filters))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "True"]


@pytest.mark.parametrize("version", ["22.0.0", "28.0.0"])
def test_the_version_guard_refuses_other_majors(version):
    with pytest.raises(patches.PatchOutdated, match=r"shared/patches.py"):
        patches._check_version("gunicorn", version, patches.GUNICORN_MAJORS, "a patch")


def test_the_shape_guard_refuses_a_changed_signature():
    def write_error(sock, status, reason, message):
        pass

    with pytest.raises(patches.PatchOutdated, match=r"status_int"):
        patches._check_parameters(write_error, ["sock", "status_int", "reason", "mesg"],
                                  "a patch")


def test_the_pinned_libraries_pass_every_guard():
    import flower
    import gunicorn
    import gunicorn.util
    from flower.views.monitor import Metrics

    with warnings.catch_warnings():
        patches._check_version("gunicorn", gunicorn.__version__, patches.GUNICORN_MAJORS, "")
        patches._check_version("flower", flower.__version__, patches.FLOWER_MAJORS, "")
        patches._check_parameters(gunicorn.util.write_error,
                                  ["sock", "status_int", "reason", "mesg"], "")
        patches._check_parameters(Metrics.get, ["self"], "")

"""`python -m worker`: check the settings and the weights, then run the Celery
worker on the configured queue. Exits 2 on bad settings, 3 on missing weights.

`python -m worker check-precision DIR [--precision P]` compares a precision with
fp32 on a folder of images instead (`worker.check_precision`)."""

from __future__ import annotations

import sys

from shared.lanes import served_lists
from worker.settings import WorkerSettings


def main(argv: list[str]) -> int:
    if argv[:1] == ["check-precision"]:
        from worker.check_precision import main as check_precision

        return check_precision(argv[1:])
    settings = WorkerSettings.or_exit("resq worker")
    from shared.log_format import configure

    configure(settings.log_level, settings.log_format)
    from shared.patches import kombu_redis_channel_gone_safe, refuse_decompression_bombs

    refuse_decompression_bombs()
    kombu_redis_channel_gone_safe()

    from worker.weights import WeightsUnavailable, resolve_weights

    try:
        resolve_weights(settings.model_weights, download=True)
    except WeightsUnavailable as error:
        print(f"resq worker: cannot start: {error}", file=sys.stderr)
        return 3

    from worker.celery_worker import app

    app.worker_main([
        "worker",
        f"--loglevel={settings.log_level}",
        f"--concurrency={settings.jobs_in_flight}",
        "--pool=threads",
        f"--queues={','.join(served_lists(settings.queue_name))}",
        *(["--task-events"] if settings.task_events else []),
        *argv,
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

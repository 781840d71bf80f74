"""What the broker holds, read from Redis as the workers and KEDA see it: the jobs
waiting in a queue and the jobs workers have taken but not yet acknowledged
(kombu's `unacked` hash). Tests await these instead of a job's transient
`started` state, which a fast machine can pass between two polls."""

from __future__ import annotations

import json

import redis

from shared.celery_app import UNACKED_KEY


def held_job_ids(client: redis.Redis) -> set[str]:
    """Ids of every task that a worker has taken and not acknowledged."""
    return {json.loads(raw)[0]["headers"]["id"] for raw in client.hvals(UNACKED_KEY)}


def snapshot(client: redis.Redis, queue: str) -> tuple[int, set[str]]:
    """(jobs waiting in `queue`, ids held by workers), read in one transaction."""
    with client.pipeline(transaction=True) as pipe:
        pipe.llen(queue)
        pipe.hvals(UNACKED_KEY)
        waiting, held = pipe.execute()
    return waiting, {json.loads(raw)[0]["headers"]["id"] for raw in held}


def await_busy(submit, held_now, queue_length, ids: list[str], *, waiting_behind: int = 4,
               burst: int = 8, timeout: float = 120) -> set[str]:
    """Await a busy worker: `held_now()` (the ids a worker holds) non-empty while at
    least `waiting_behind` jobs wait in the queue behind them. Whenever fewer wait,
    `submit()` is called `burst` times at once (each returns a new job id, appended
    to `ids`), so that the queue fills faster than workers drain it, on a machine of
    any speed. Returns the ids held at that moment."""
    from bench.stack import await_condition

    def busy():
        if queue_length() < waiting_behind:
            ids.extend(submit() for _ in range(burst))
            return None
        return held_now()

    return await_condition(busy, timeout, "a worker holding jobs with more waiting",
                           interval=0.01)

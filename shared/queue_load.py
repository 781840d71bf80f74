"""What a queue asks of its workers, read from Redis in one round trip: the jobs
waiting in each lane (the lists workers pop) and the jobs open (accepted and not
ended: waiting, held by a worker, or running; the lost-job index), with the batch
items not yet released into the queue. Scaling reads
`open`: a count of waiting jobs alone misses the jobs workers already hold, so a
busy worker would look idle and be scaled in, or to zero, mid-batch."""

from __future__ import annotations

import redis

from shared.api_models import QueueLoad
from shared.job_data.keys import QueueKeys
from shared.lanes import Lane, lane_list


def read_load(client: redis.Redis, queue: str) -> QueueLoad:
    with client.pipeline(transaction=False) as pipe:
        for lane in Lane:
            pipe.llen(lane_list(queue, lane))
        pipe.zcard(QueueKeys(queue).inflight)
        pipe.get(QueueKeys(queue).batch_unreleased)
        *waiting, open_jobs, unreleased = pipe.execute()
    lanes = {lane.value: int(count) for lane, count in zip(Lane, waiting, strict=True)}
    # A job is indexed once its message is sent: one just sent may be waiting
    # before it is counted open, never the other way round for long.
    # Batch items not yet released are work the queue has taken on: counted open.
    unreleased = max(0, int(unreleased or 0))
    return QueueLoad(queue=queue, waiting=lanes, unreleased=unreleased,
                     open=max(int(open_jobs), sum(lanes.values())) + unreleased)

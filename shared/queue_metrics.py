"""The queue's state as Prometheus gauges, read from Redis at each scrape:
`resq_queue_length` (each lane's list, what KEDA measures), `resq_oldest_job_age_seconds` and
`resq_queued_bytes` (what `QUEUE_MAX_BYTES` limits).
Both tiers export them, so a backlog is visible while no worker is up."""

from __future__ import annotations

import time

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.job_store import QUEUED_BYTES_PREFIX
from shared.lanes import Lane, lane_list


class QueueCollector(Collector):
    """`resq_queue_length` and `resq_oldest_job_age_seconds`, read at scrape time."""

    def __init__(self, client: redis.Redis, queue: str, inflight_key: str):
        self.client = client
        self.queue = queue
        self.inflight_key = inflight_key

    def collect(self):
        length = GaugeMetricFamily("resq_queue_length",
                                   "Jobs waiting in each lane of the queue (the Redis lists "
                                   "KEDA measures)", labels=["queue", "lane"])
        oldest = GaugeMetricFamily("resq_oldest_job_age_seconds",
                                   "Age of the oldest job accepted and not yet finished",
                                   labels=["queue"])
        held = GaugeMetricFamily("resq_queued_bytes",
                                 "Bytes of images held in Redis for unfinished jobs "
                                 "(admission stops at QUEUE_MAX_BYTES)", labels=["queue"])
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for lane in Lane:
                    pipe.llen(lane_list(self.queue, lane))
                pipe.zrange(self.inflight_key, 0, 0, withscores=True)
                pipe.get(QUEUED_BYTES_PREFIX + self.queue)
                *waiting, first, queued_bytes = pipe.execute()
        except redis.RedisError:
            return  # no sample rather than a wrong one; the worker's `up` still says it lives
        for lane, count in zip(Lane, waiting, strict=True):
            length.add_metric([self.queue, lane.value], count)
        oldest.add_metric([self.queue], max(0.0, time.time() - first[0][1]) if first else 0.0)
        held.add_metric([self.queue], int(queued_bytes or 0))
        yield length
        yield oldest
        yield held

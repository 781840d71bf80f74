"""The queue's state as Prometheus gauges, read from Redis at each scrape:
`resq_queue_length` (the list KEDA measures) and `resq_oldest_job_age_seconds`.
Both tiers export them, so a backlog is visible while no worker is up."""

from __future__ import annotations

import time

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class QueueCollector(Collector):
    """`resq_queue_length` and `resq_oldest_job_age_seconds`, read at scrape time."""

    def __init__(self, client: redis.Redis, queue: str, inflight_key: str):
        self.client = client
        self.queue = queue
        self.inflight_key = inflight_key

    def collect(self):
        length = GaugeMetricFamily("resq_queue_length",
                                   "Jobs waiting in the queue (the Redis list KEDA measures)",
                                   labels=["queue"])
        oldest = GaugeMetricFamily("resq_oldest_job_age_seconds",
                                   "Age of the oldest job accepted and not yet finished",
                                   labels=["queue"])
        try:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.llen(self.queue)
                pipe.zrange(self.inflight_key, 0, 0, withscores=True)
                waiting, first = pipe.execute()
        except redis.RedisError:
            return  # no sample rather than a wrong one; the worker's `up` still says it lives
        length.add_metric([self.queue], waiting)
        oldest.add_metric([self.queue], max(0.0, time.time() - first[0][1]) if first else 0.0)
        yield length
        yield oldest

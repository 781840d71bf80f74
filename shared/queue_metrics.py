"""The queue's state as Prometheus metrics, read from Redis at each scrape:
`resq_queue_length` (each lane's list, what KEDA measures), `resq_oldest_job_age_seconds`,
`resq_queued_bytes` (what `QUEUE_MAX_BYTES` limits), and the job data's own counters:
`resq_results_dropped_total` (ended jobs' records dropped to make room for new work,
`shared.job_data.budget`) and `resq_counter_corrections_total` (drift the reconcile
healed, `shared.job_data.reconcile`), and the batches': `resq_batch_items_unreleased`,
`resq_batches_releasing`, `resq_batch_items_released_total` and
`resq_batches_ended_total` by status. They are counts kept in Redis, so every
process of both tiers reports the same values, and a backlog is visible while no
worker is up."""

from __future__ import annotations

import time

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.api_models import BatchStatus
from shared.job_data.keys import QueueKeys
from shared.lanes import Lane, lane_list

# Cache entries whose size the estimate of the cache's bytes is taken from.
CACHE_SAMPLE = 10


class QueueCollector(Collector):
    def __init__(self, client: redis.Redis, queue: str):
        self.client = client
        self.queue = queue
        self.keys = QueueKeys(queue)

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
        dropped = CounterMetricFamily("resq_results_dropped",
                                      "Ended jobs' results dropped before their TTL to make "
                                      "room in Redis for new work (oldest first)",
                                      labels=["queue"])
        corrected = CounterMetricFamily("resq_counter_corrections",
                                        "Counts the reconcile found off and set right, by "
                                        "counter", labels=["queue", "counter"])
        unreleased = GaugeMetricFamily("resq_batch_items_unreleased",
                                       "Items of running batches not yet released into the "
                                       "batch lane (autoscaling counts them)", labels=["queue"])
        releasing = GaugeMetricFamily("resq_batches_releasing",
                                      "Batches with items still to release", labels=["queue"])
        released = CounterMetricFamily("resq_batch_items_released",
                                       "Batch items released into the batch lane",
                                       labels=["queue"])
        batches_ended = CounterMetricFamily("resq_batches_ended",
                                            "Batches ended, by status", labels=["queue",
                                                                                "status"])
        cache_bytes = GaugeMetricFamily("resq_result_cache_bytes",
                                        "Bytes the result cache's entries hold in Redis, "
                                        "estimated from its newest 10 entries",
                                        labels=["queue"])
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for lane in Lane:
                    pipe.llen(lane_list(self.queue, lane))
                pipe.zrange(self.keys.inflight, 0, 0, withscores=True)
                pipe.get(self.keys.queued_bytes)
                pipe.get(self.keys.results_dropped)
                pipe.hgetall(self.keys.corrections)
                pipe.get(self.keys.batch_unreleased)
                pipe.zcard(self.keys.batches)
                pipe.hgetall(self.keys.batch_stats)
                pipe.llen(self.keys.cache_entries)
                pipe.lrange(self.keys.cache_entries, -CACHE_SAMPLE, -1)
                (*waiting, first, queued_bytes, dropped_total, corrections, items_unreleased,
                 batches_releasing, stats, entries, newest) = pipe.execute()
                with self.client.pipeline(transaction=False) as sizes:
                    for entry in newest:
                        sizes.memory_usage(entry)
                    sampled = [size for size in sizes.execute() if size] if newest else []
        except redis.RedisError:
            return  # no sample rather than a wrong one; the worker's `up` still says it lives
        for lane, count in zip(Lane, waiting, strict=True):
            length.add_metric([self.queue, lane.value], count)
        oldest.add_metric([self.queue], max(0.0, time.time() - first[0][1]) if first else 0.0)
        held.add_metric([self.queue], int(queued_bytes or 0))
        dropped.add_metric([self.queue], int(dropped_total or 0))
        for counter in ("open_jobs", "queued_bytes", "queued_by_key", "batch_unreleased"):
            corrected.add_metric([self.queue, counter],
                                 int(corrections.get(counter.encode(), 0)))
        unreleased.add_metric([self.queue], max(0, int(items_unreleased or 0)))
        releasing.add_metric([self.queue], int(batches_releasing))
        released.add_metric([self.queue], int(stats.get(b"released", 0)))
        for status in (BatchStatus.SUCCEEDED, BatchStatus.CANCELLED):
            batches_ended.add_metric([self.queue, status.value],
                                     int(stats.get(status.value.encode(), 0)))
        cache_bytes.add_metric([self.queue], int(entries) * sum(sampled) / len(sampled)
                               if sampled else 0)
        yield from (length, oldest, held, dropped, corrected, unreleased, releasing, released,
                    batches_ended, cache_bytes)

"""The two lanes of a queue. A job submitted with a wait (`?wait`, `Prefer: wait`)
goes to the interactive lane, every other job to the batch lane; every worker takes
from the interactive lane first (a fixed order, not round robin), and its batcher
fills a batch with interactive jobs first. Each lane is its own Redis list (what
Celery's Redis transport pops), so a backlog of batch jobs never stands between a
short wait and a worker.

The batch lane's list keeps the queue's own name (`QUEUE_NAME`), as it had before
lanes existed; the queue's name also keys its jobs' bookkeeping in Redis."""

from __future__ import annotations

from enum import StrEnum


class Lane(StrEnum):
    INTERACTIVE = "interactive"
    BATCH = "batch"


INTERACTIVE_SUFFIX = "-interactive"


def lane_list(queue: str, lane: Lane | str) -> str:
    """The Redis list (Celery queue) of `queue`'s `lane`."""
    return queue + INTERACTIVE_SUFFIX if Lane(lane) is Lane.INTERACTIVE else queue


def served_lists(queue: str) -> list[str]:
    """`queue`'s lists in the order workers serve them: interactive first."""
    return [lane_list(queue, Lane.INTERACTIVE), lane_list(queue, Lane.BATCH)]

"""Decode overlapped with the model (`BATCH_OVERLAP`): a decoder and a gated model
that write down what happened show the next batch decoded while the current one is
in the model, only with overlap; and a job charged with a crash runs with nothing
else in flight."""

import threading
from contextlib import contextmanager

import numpy as np
import pytest

from tests.worker.test_batching import submit_together
from worker.batch_pipeline import BatchPipeline
from worker.batching import Batcher


class Timeline:
    """A decoder and a gated model that write down what happened, in order."""

    def __init__(self):
        self.events: list[str] = []
        self.gate = threading.Event()
        self.lock = threading.Lock()

    def note(self, event: str) -> None:
        with self.lock:
            self.events.append(event)

    def decode(self, payload):
        self.note(f"decode {int(payload[0])}")
        return payload

    def model(self, batch):
        first = int(batch[0][0])
        self.note(f"model {first} begins")
        if first == 1:
            self.gate.wait(10)
        self.note(f"model {first} ends")
        return batch.reshape(len(batch), -1).sum(axis=1)


@contextmanager
def first_batch_in_the_model(overlap: bool):
    """A batcher whose first batch (image 1) is held in the model by the timeline's
    gate; yields the timeline, the batcher and image 1's future."""
    from bench.stack import await_condition

    timeline = Timeline()
    batcher = Batcher(BatchPipeline(timeline.decode, timeline.model, threads=2),
                      max_size=4, max_wait_seconds=0, overlap=overlap)
    try:
        with batcher.slot() as slot:
            first = slot.submit(np.full((1,), 1.0))
        await_condition(lambda: "model 1 begins" in timeline.events, 5, "the first batch")
        yield timeline, batcher, first
    finally:
        timeline.gate.set()
        batcher.stop()


@pytest.mark.parametrize("overlap", [True, False], ids=["overlap", "phases"])
def test_the_next_batch_is_decoded_while_the_model_runs_only_with_overlap(overlap):
    from bench.stack import await_condition

    with first_batch_in_the_model(overlap) as (timeline, batcher, first):
        with batcher.slot() as slot:
            second = slot.submit(np.full((1,), 2.0))
        if overlap:
            await_condition(lambda: "decode 2" in timeline.events, 5,
                            "the second batch decoded while the first is in the model")
            assert batcher.stalled_seconds() > 0  # the oldest batch, in the model, counts
        timeline.gate.set()
        assert (float(first.result(5).logits), float(second.result(5).logits)) == (1.0, 2.0)
    decoded_2 = ["decode 2", "model 1 ends"] if overlap else ["model 1 ends", "decode 2"]
    assert timeline.events == ["decode 1", "model 1 begins", *decoded_2, "model 2 begins",
                               "model 2 ends"]


def test_with_overlap_an_input_submitted_alone_runs_with_nothing_else_in_flight():
    """A job charged with a crash runs alone: with overlap too, no other batch is
    decoded or in the model meanwhile, so its crashes charge no other job."""
    from bench.stack import await_condition

    with first_batch_in_the_model(True) as (timeline, batcher, first):
        alone, after = submit_together(batcher, [np.full((1,), 2.0), np.full((1,), 3.0)],
                                       alone={0})
        await_condition(lambda: len(batcher._queue) == 1, 5, "the batcher to take the lone job")
        timeline.gate.set()
        assert [float(f.result(5).logits) for f in (first, alone, after)] == [1.0, 2.0, 3.0]
    assert timeline.events == ["decode 1", "model 1 begins", "model 1 ends", "decode 2",
                               "model 2 begins", "model 2 ends", "decode 3", "model 3 begins",
                               "model 3 ends"]

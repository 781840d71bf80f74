"""The batcher with a tiny real model stand-in (a function that records the batch
sizes it is called with); no mocks. Each test runs with the phases one at a time
and with decoding overlapped with the model (`BATCH_OVERLAP`): the batches and
guarantees are the same."""

import threading
from contextlib import ExitStack

import numpy as np
import pytest

from worker.batch_pipeline import BatchPipeline
from worker.batching import Batcher


class RecordingModel:
    """Returns each input's sum as its logit row and remembers batch sizes."""

    def __init__(self, gate: threading.Event | None = None):
        self.sizes: list[int] = []
        self.gate = gate
        self.entered = threading.Event()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.sizes.append(batch.shape[0])
        return batch.reshape(len(batch), -1).sum(axis=1)


@pytest.fixture(params=[False, True], ids=["phases", "overlap"])
def make_batcher(request):
    made = []

    def make(model, decode=lambda payload: payload, **kwargs):
        batcher = Batcher(BatchPipeline(decode, model, threads=2), overlap=request.param,
                          **kwargs)
        made.append(batcher)
        return batcher

    yield make
    for batcher in made:
        batcher.stop()


def test_one_input_alone_does_not_wait_for_company(make_batcher):
    model = RecordingModel()
    batcher = make_batcher(model, max_size=8, max_wait_seconds=30)
    with batcher.slot() as slot:
        output = slot.submit(np.ones(3)).result(timeout=5)
    assert model.sizes == [1] and float(output.logits) == 3.0
    assert output.batch_size == 1


def submit_together(batcher, payloads, alone=()) -> list:
    """Announce every payload first, then hand each over: as job threads that all
    took their message while the model was busy."""
    with ExitStack() as stack:
        slots = [stack.enter_context(batcher.slot()) for _ in payloads]
        return [slot.submit(payload, alone=i in alone)
                for i, (slot, payload) in enumerate(zip(slots, payloads, strict=True))]


def test_inputs_that_arrive_while_the_model_is_busy_share_a_batch(make_batcher):
    gate = threading.Event()
    model = RecordingModel(gate)
    batcher = make_batcher(model, max_size=4, max_wait_seconds=30)
    with batcher.slot() as first:
        blocked = first.submit(np.full((2,), 1.0))
    assert model.entered.wait(5)  # the first batch is in the model, held by the gate
    # Nine more arrive while the first batch is in the model.
    futures = submit_together(batcher, [np.full((2,), float(v)) for v in range(2, 11)])
    gate.set()
    results = [blocked.result(5)] + [future.result(5) for future in futures]
    assert model.sizes == [1, 4, 4, 1]
    # Each input gets its own row back, whatever batch it ran in.
    assert [float(r.logits) for r in results] == [2.0 * v for v in range(1, 11)]
    assert [r.batch_size for r in results] == [1, 4, 4, 4, 4, 4, 4, 4, 4, 1]


def test_a_batch_waits_for_announced_inputs_up_to_max_wait(make_batcher):
    model = RecordingModel()
    batcher = make_batcher(model, max_size=8, max_wait_seconds=10)
    announced = threading.Event()
    release = threading.Event()
    second_result = []

    def second_job():
        with batcher.slot() as slot:
            announced.set()
            release.wait(10)  # still "decoding"
            second_result.append(slot.submit(np.ones(1)).result(5))

    thread = threading.Thread(target=second_job)
    thread.start()
    announced.wait(5)
    with batcher.slot() as slot:
        first = slot.submit(np.ones(1))
    release.set()
    thread.join(10)
    assert first.result(5).batch_size == 2 and model.sizes == [2]


def test_an_input_that_fails_before_submitting_does_not_hold_the_batch(make_batcher):
    model = RecordingModel()
    batcher = make_batcher(model, max_size=8, max_wait_seconds=30)
    with pytest.raises(ValueError):
        with batcher.slot():
            raise ValueError("undecodable")  # as a bad image does in preprocessing
    with batcher.slot() as slot:
        assert slot.submit(np.ones(1)).result(timeout=5).batch_size == 1


def test_an_input_that_fails_to_decode_fails_alone(make_batcher):
    gate = threading.Event()
    model = RecordingModel(gate)

    def decode(payload):
        if payload is None:
            raise ValueError("undecodable")
        return payload

    batcher = make_batcher(model, decode=decode, max_size=4, max_wait_seconds=30)
    with batcher.slot() as slot:
        first = slot.submit(np.ones(1))
    assert model.entered.wait(5)  # the first batch holds the model until the gate opens
    futures = submit_together(batcher, [np.ones(1), None, np.full((1,), 2.0)])
    gate.set()
    assert first.result(5).batch_size == 1
    good, bad, other = futures
    with pytest.raises(ValueError, match="undecodable"):
        bad.result(5)
    assert (float(good.result(5).logits), float(other.result(5).logits)) == (1.0, 2.0)
    assert good.result().batch_size == 2 and model.sizes == [1, 2]


def test_a_model_error_fails_the_jobs_of_that_batch_only(make_batcher):
    calls = []

    def flaky(batch):
        calls.append(batch.shape[0])
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return batch.reshape(len(batch), -1).sum(axis=1)

    batcher = make_batcher(flaky, max_size=4, max_wait_seconds=0)
    with batcher.slot() as slot:
        failed = slot.submit(np.ones(1))
    with pytest.raises(RuntimeError, match="out of memory"):
        failed.result(5)
    with batcher.slot() as slot:
        assert float(slot.submit(np.ones(1)).result(5).logits) == 1.0


def test_an_input_submitted_alone_gets_a_batch_of_its_own(make_batcher):
    gate = threading.Event()
    model = RecordingModel(gate)
    batcher = make_batcher(model, max_size=8, max_wait_seconds=30)
    with batcher.slot() as slot:
        first = slot.submit(np.ones(1))
    assert model.entered.wait(5)  # the model is busy while the rest arrive
    futures = submit_together(batcher, [np.full((1,), v) for v in (1.0, 2.0, 3.0, 4.0, 5.0)],
                              alone={2})
    gate.set()
    sizes = [future.result(5).batch_size for future in futures]
    assert first.result(5).batch_size == 1
    # The two before it share a batch, it runs by itself, the two after share one.
    assert sizes == [2, 2, 1, 2, 2] and model.sizes == [1, 2, 1, 2]
    assert [float(f.result().logits) for f in futures] == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_the_batcher_says_how_long_it_has_had_work_without_progress(make_batcher):
    gate = threading.Event()
    model = RecordingModel(gate)
    batcher = make_batcher(model, max_size=4, max_wait_seconds=0.0)
    assert batcher.stalled_seconds() == 0.0  # nothing to do is not a stall
    with batcher.slot() as slot:
        future = slot.submit(np.ones(2))
    assert model.entered.wait(5)
    from bench.stack import await_condition

    await_condition(lambda: batcher.stalled_seconds() > 0.2, 10, "a growing stall")
    gate.set()
    future.result(timeout=5)
    assert batcher.stalled_seconds() == 0.0  # through its work: no stall


def test_a_classify_call_past_its_deadline_fails_with_worker_stalled(make_batcher):
    from shared.errors import WorkerStalled
    from worker.classifier import Classifier

    gate = threading.Event()
    batcher = make_batcher(RecordingModel(gate), max_size=4, max_wait_seconds=0.0)
    classifier = Classifier(model=None, batcher=batcher, deadline_seconds=0.3)
    try:
        with pytest.raises(WorkerStalled) as stalled:
            classifier.classify(np.ones(2), top_k=1)
        assert stalled.value.code == "worker_stalled" and "0.3 s" in stalled.value.message
    finally:
        gate.set()


def test_urgent_inputs_go_into_the_next_batch_before_the_rest(make_batcher):
    """The interactive lane's images (urgent) fill a batch first; the rest keep their
    order behind them."""
    gate = threading.Event()
    model = RecordingModel(gate)
    batcher = make_batcher(model, max_size=3, max_wait_seconds=30)
    with batcher.slot() as slot:
        first = slot.submit(np.full((1,), 0.0))
    assert model.entered.wait(5)  # the model is busy while the rest arrive
    with ExitStack() as stack:
        slots = [stack.enter_context(batcher.slot()) for _ in range(5)]
        futures = [slot.submit(np.full((1,), float(value)), urgent=value in (4, 5))
                   for value, slot in zip(range(1, 6), slots, strict=True)]
    gate.set()
    first.result(5)
    rows = {float(f.result(5).logits): f.result().batch_size for f in futures}
    assert model.sizes == [1, 3, 2]
    # 4 and 5 came last but ran in the first batch after, with the oldest other (1).
    assert rows == {4.0: 3, 5.0: 3, 1.0: 3, 2.0: 2, 3.0: 2}

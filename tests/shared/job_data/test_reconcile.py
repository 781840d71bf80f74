"""The reconcile recomputes the counts from the records and heals drift, whatever
caused it, counting what it corrected; with nothing off it changes nothing."""

from shared.job_data.reconcile import Corrections, Reconciler
from shared.job_data.records import new_job_id
from shared.job_data.store import NewJob
from tests.shared.job_data.conftest import RESULT


def test_drift_is_healed_and_counted(store):
    client, keys = store.client, store.keys
    jobs = [NewJob(new_job_id(), b"x" * 100) for _ in range(3)]
    store.create_many(jobs, top_k=5, form="raw", quota_key="k", max_per_key=10)
    store.start(jobs[0].id, "w")
    reconciler = Reconciler(client, store.queue)
    assert reconciler.reconcile() == Corrections(0, 0, 0)  # nothing off

    client.incrby(keys.queued_bytes, 777)  # drift, however it came
    client.set(keys.quota_counter("k"), 9)
    client.set(keys.quota_counter("gone"), 4)
    client.sadd(keys.quota_keys, keys.quota_counter("gone"))
    client.delete(keys.record(jobs[2].id))  # a record lost under its index entry
    corrected = reconciler.reconcile()
    assert corrected == Corrections(open_jobs=1, queued_bytes=1, queued_by_key=2)
    assert int(client.get(keys.queued_bytes)) == 200  # the two jobs still open
    assert int(client.get(keys.quota_counter("k"))) == 1  # jobs[1], still queued
    assert not client.exists(keys.quota_counter("gone"))
    assert client.zcard(keys.inflight) == 2
    assert reconciler.corrections_total() == {"open_jobs": 1, "queued_bytes": 1,
                                              "queued_by_key": 2}
    assert reconciler.reconcile() == Corrections(0, 0, 0)

    for job in jobs[:2]:
        store.finish(job.id, result=RESULT)
    assert reconciler.reconcile() == Corrections(0, 0, 0)
    assert int(client.get(keys.queued_bytes)) == 0 and client.zcard(keys.inflight) == 0
    assert not client.smembers(keys.quota_keys)

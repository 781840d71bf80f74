"""Records as Redis holds them (a live job's hash, an ended job's JSON), read in one
round trip whichever they are, and job ids that carry when they were made."""

import time
import uuid

from shared.job_data.records import JobRecords, id_time, new_job_id
from shared.job_data.store import NewJob
from tests.shared.job_data.conftest import RESULT


def test_job_ids_are_uuid7_and_tell_when_they_were_made():
    made = time.time()
    job_id = new_job_id(made)
    parsed = uuid.UUID(job_id)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert abs(id_time(job_id) - made) < 0.001
    assert id_time(str(uuid.uuid4())) is None and id_time("not an id") is None
    assert len({new_job_id(made) for _ in range(1000)}) == 1000


def test_live_ended_and_missing_records_are_read_in_one_go(store):
    live, ended = NewJob(new_job_id(), b"x"), NewJob(new_job_id(), b"y")
    store.create_many([live, ended], top_k=4, form="raw")
    store.start(ended.id, "worker-7")
    store.finish(ended.id, result=RESULT)
    records = JobRecords(store.client, 3600, store.queue)
    got = records.get_many([live.id, ended.id, "missing"])
    assert [r.status.value if r else None for r in got] == ["queued", "succeeded", None]
    assert got[1].result == RESULT and got[1].worker == "worker-7" and got[1].top_k == 4


def test_a_crash_count_on_an_ended_job_changes_nothing(store):
    job = NewJob(new_job_id(), b"x")
    store.create_many([job], top_k=5, form="raw")
    store.start(job.id, "w")
    store.records.batch_started(job.id)
    assert store.start(job.id, "w").crashes == 1
    store.cancel(job.id)  # cancelled while its batch runs
    store.records.batch_ended(job.id)  # no error, and the ended record stays as it was
    assert store.record(job.id).error["code"] == "cancelled"

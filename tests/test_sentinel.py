"""Past one Redis: a primary and a replica (each with an append-only file) and three
sentinels on loopback (Debian's redis-server), and every client of every tier
finding the primary through the sentinels. A create is answered only once a
replica holds it; the primary's SIGKILL mid-load loses no accepted job."""

import signal
import threading
import time
import uuid
from collections import Counter

import pytest
import requests

from bench.sentinel import SentinelCluster
from bench.stack import await_condition, start_gunicorn, start_worker
from shared.celery_app import make_celery
from shared.errors import NotReplicated
from shared.job_data.records import new_job_id
from shared.job_data.store import JobStore, NewJob, ReplicaAcks
from shared.redis_client import RedisTarget
from shared.settings import CommonSettings
from tests.support.images import jpeg
from tests.support.webhook_receiver import SECRET, Receiver

pytestmark = [pytest.mark.processes, pytest.mark.chaos]

JPEG = jpeg(64, 48)


@pytest.fixture()
def cluster(tmp_path):
    made = SentinelCluster(tmp_path / "redis").start()
    yield made
    made.stop()


def settings_of(cluster: SentinelCluster, **overrides) -> CommonSettings:
    env = {k.lower(): v for k, v in cluster.env.items()}
    return CommonSettings.load(**env, queue_name=f"ha-{uuid.uuid4().hex[:6]}", **overrides)


def test_every_client_finds_the_primary_and_a_create_waits_for_the_replica(cluster):
    settings = settings_of(cluster)
    target = RedisTarget.of(settings)
    client = target.client()
    assert client.info("server")["tcp_port"] == cluster.ports["primary"]
    store = JobStore(client, make_celery(settings), queue=settings.queue_name,
                     ttl_seconds=600, acks=ReplicaAcks.of(settings))
    assert store.acks == ReplicaAcks(1, 1.0)
    job = NewJob(new_job_id(), JPEG)
    store.create_many([job], top_k=5, form="raw")
    # Answered only once the replica held it: it is there the moment create returns.
    assert cluster.client("replica").hget(store.keys.record(job.id), "status") == b"queued"
    assert cluster.client("replica").llen(settings.queue_name) == 1  # and its message
    # The rate limiter's storage reaches the primary too.
    from limits.storage import storage_from_string
    uri, options = target.limits_storage()
    assert storage_from_string(uri, **options).check()


def test_a_create_no_replica_acknowledges_is_refused_and_undone(cluster):
    settings = settings_of(cluster, redis_replica_ack_seconds=0.3)
    store = JobStore(RedisTarget.of(settings).client(), make_celery(settings),
                     queue=settings.queue_name, ttl_seconds=600, acks=ReplicaAcks.of(settings))
    replica = cluster.servers["replica"]
    replica.popen.send_signal(signal.SIGSTOP)  # alive, connected, and silent
    try:
        job = NewJob(new_job_id(), JPEG)
        with pytest.raises(NotReplicated) as refused:
            store.create_many([job], top_k=5, form="raw")
        assert refused.value.status_code == 503 and refused.value.retry_after
        assert store.record(job.id) is None  # undone on the primary
    finally:
        replica.popen.send_signal(signal.SIGCONT)


CLIENTS = 8
RUN_SECONDS = 40
KILL_AT = 10


def test_the_primarys_death_under_load_loses_no_accepted_job(cluster, tmp_path):
    """8 clients submit for 40 s; at 10 s the primary gets SIGKILL. Every job answered
    202 or 200 ends, once; no 500; submissions are admitted again within 30 s; the
    killed primary, restarted, rejoins as a replica; one webhook per job."""
    queue = "failover"
    env = {**cluster.env, "WEBHOOK_SECRET": SECRET, "WEBHOOK_HTTP_NETWORKS": "127.0.0.1/32",
           "URL_FETCH_ALLOW_NETWORKS": "127.0.0.1/32", "URL_FETCH_ALLOW_PORTS": "any"}
    workers = [start_worker(cluster.env["REDIS_URL"], queue, tmp_path / f"worker-{n}.log",
                            wait_ready=False, WORKER_HEARTBEAT_SECONDS=0.5,
                            VISIBILITY_TIMEOUT_SECONDS=10, **env)
               for n in range(2)]
    for n in range(2):
        await_condition(lambda n=n: (tmp_path / f"worker-{n}.ready").exists(), 120,
                        f"worker {n}")
    web, base = start_gunicorn(cluster.env["REDIS_URL"], queue, tmp_path / "web.log",
                               RATE_LIMIT="", WEB_THREADS=16, **env)
    accepted: dict[str, float] = {}
    statuses: Counter = Counter()
    errors: list[str] = []
    admitted_at: list[float] = []
    lock = threading.Lock()
    began = time.monotonic()
    with Receiver() as receiver:
        def client_loop():
            session = requests.Session()
            while time.monotonic() - began < RUN_SECONDS:
                try:
                    # Never held past its wait (5 s) by more than the web tier's
                    # Redis timeouts: a request still open after 15 s counts as hung.
                    answer = session.post(f"{base}/jobs?wait=5&webhook={receiver.url}",
                                          data=JPEG, headers={"Content-Type": "image/jpeg"},
                                          timeout=15)
                except requests.RequestException as error:
                    with lock:
                        errors.append(repr(error))
                    continue
                now = time.monotonic() - began
                with lock:
                    statuses[answer.status_code] += 1
                    if answer.status_code in (200, 202):
                        accepted[answer.json()["id"]] = now
                        admitted_at.append(now)
                if answer.status_code == 503:
                    time.sleep(float(answer.headers.get("Retry-After", 1)) / 4)

        clients = [threading.Thread(target=client_loop) for _ in range(CLIENTS)]
        for thread in clients:
            thread.start()
        await_condition(lambda: time.monotonic() - began >= KILL_AT, KILL_AT + 5,
                        "the moment of the kill", interval=0.05)
        old_primary = cluster.ports["primary"]
        in_flight = sum(1 for t in accepted.values() if t > KILL_AT - 2)
        cluster.kill("primary")
        killed = time.monotonic() - began
        await_condition(lambda: cluster.primary_port() != old_primary, 60,
                        "the sentinels' election", interval=0.1)
        elected = time.monotonic() - began
        for thread in clients:
            thread.join()
        first_after = min((t for t in admitted_at if t > elected), default=None)

        # Every accepted job ends, once.
        final = {}
        for job_id in accepted:
            body = requests.get(f"{base}/jobs/{job_id}?wait=60", timeout=90).json()
            final[job_id] = body.get("status") or body["error"]["code"]
        last_done = time.monotonic() - began
        await_condition(lambda: {d["job_id"] for d in receiver.deliveries} >= set(accepted),
                        120, "a webhook for every job")
        # One delivery (by id) per job: a repeat on the wire carries the same id.
        deliveries = Counter(job_id for job_id, _ in
                             {(d["job_id"], d["delivery_id"]) for d in receiver.deliveries})
        # The old primary, restarted on its data, rejoins as a replica of the new one.
        cluster.start_server("primary")
        await_condition(lambda: cluster.client("primary").info("replication")["role"]
                        == "slave", 60, "the old primary rejoining as a replica")
    # Every process followed the failover by itself: none died or was restarted.
    alive = [process.alive() for process in (web, *workers)]
    for process in (web, *workers):
        process.stop()
    assert alive == [True, True, True]
    assert not [w for w in workers if "Unrecoverable error" in w.log()]
    runs = Counter(line.split("job ")[1].split(" ")[0]
                   for worker in workers for line in worker.log().splitlines()
                   if "classified in a batch" in line)
    print(f"\nfailover: kill at {killed:.1f} s ({in_flight} jobs accepted in the 2 s before), "
          f"sentinels elected a new primary at {elected:.1f} s, first job admitted after "
          f"at {first_after or float('nan'):.1f} s, last job done at {last_done:.1f} s; answers "
          f"{dict(statuses)}, {len(errors)} connection errors, {len(accepted)} jobs accepted, "
          f"{sum(n > 1 for n in runs.values())} run twice (one end each)")
    assert errors == []  # no request hung or cut off
    assert statuses[500] == 0 and not [s for s in statuses if s >= 500 and s != 503]
    assert set(final.values()) == {"succeeded"}, Counter(final.values())
    assert first_after is not None and first_after - killed < 30
    assert max(deliveries.values()) == 1 and set(deliveries) >= set(accepted)

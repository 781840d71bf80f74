"""The ScaledObject's triggers read the live queue: with no worker running, jobs
submitted through the API leave exactly their count in the Redis list each redis
trigger names (the batch lane's list for jobs without a wait, the interactive
lane's for jobs with one), and the web tier's /scaling, which the metrics-api
trigger reads, counts them all open. From those values, the replicas KEDA and the
HPA ask for (`tests.support.keda`) are computed and printed for N = 0, 1,
10 x listLength and 1000, for the default values and for scale to zero."""

import uuid

import pytest
import redis

from shared.lanes import Lane, lane_list, served_lists
from tests.conftest import make_settings, running_app
from tests.deploy.chart import VALUE_SETS, build_renderer, render
from tests.support.images import jpeg
from tests.support.keda import ScaledObject, Trigger, replicas_for_values, trigger_reader

pytestmark = pytest.mark.chart


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    return build_renderer(tmp_path_factory.mktemp("helm"))


@pytest.mark.parametrize("value_set", ["default", "scale-to-zero"])
def test_each_trigger_reads_the_live_queue_and_replicas_follow_it(renderer, redis_url,
                                                                   tmp_path, value_set):
    queue = f"keda-{uuid.uuid4().hex[:6]}"
    values = {**VALUE_SETS[value_set], "settings": {"QUEUE_NAME": queue}}
    objects, _ = render(renderer, values, tmp_path)
    spec = next(o for o in objects if o["kind"] == "ScaledObject")["spec"]
    scaled = ScaledObject(spec)
    lists = [t.metadata["listName"] for t in scaled.triggers if t.kind == "redis"]
    assert lists == served_lists(queue)  # the keys the workers pop, in their order
    (load,) = [t for t in scaled.triggers if t.kind == "metrics-api"]
    assert load.metadata["url"].endswith("/scaling")
    list_length = int(next(t.target for t in scaled.triggers if t.kind == "redis"))

    client = redis.Redis.from_url(redis_url)
    body = jpeg(32, 24)
    rows = []
    # No worker consumes this queue: every submitted job stays where it was sent.
    with running_app(make_settings(redis_url, queue_name=queue)) as app:
        api = app.test_client()
        # One job whose client waits (a moment): it goes to the interactive lane.
        assert api.post("/jobs?wait=0.01", data=body,
                        content_type="image/jpeg").status_code == 202
        submitted = 1
        for target in (1, 10 * list_length, 1000):
            while submitted < target:
                assert api.post("/jobs", data=body, content_type="image/jpeg").status_code == 202
                submitted += 1
            by_list = {name: client.llen(name) for name in lists}
            assert by_list == {lane_list(queue, Lane.INTERACTIVE): 1,
                               lane_list(queue, Lane.BATCH): target - 1}
            scaling = api.get("/scaling").get_json()
            assert scaling["open"] == target
            assert scaling["waiting"] == {"interactive": 1, "batch": target - 1}
            trigger_values = [float(scaling[t.metadata["valueLocation"]])
                              if t.kind == "metrics-api" else float(by_list[t.metadata["listName"]])
                              for t in scaled.triggers]
            rows.append((target, trigger_values, replicas_for_values(spec, trigger_values)))
    for name in lists:
        client.delete(name)
    print(f"\n{value_set}: triggers "
          + ", ".join(f"{t.kind} target {t.target:g}" for t in scaled.triggers)
          + f"; min={scaled.min_replicas} max={scaled.max_replicas}")
    print(f"  {0:5d} jobs -> KEDA asks for {replicas_for_values(spec, [0.0] * 3)} workers")
    for jobs, trigger_values, replicas in rows:
        print(f"  {jobs:5d} jobs -> values {trigger_values} -> KEDA asks for {replicas} workers")
    assert replicas_for_values(spec, [0.0] * 3) == scaled.min_replicas
    assert rows[-1][2] == scaled.max_replicas
    # One waiting job wakes a worker from zero unless the activation threshold is higher.
    activation = min(t.activation for t in scaled.triggers)
    assert rows[0][2] == (max(1, scaled.min_replicas) if activation < 1 else scaled.min_replicas)


@pytest.mark.processes
def test_the_sentinel_triggers_read_the_live_queue_on_the_primary(renderer, tmp_path):
    """redis.mode sentinel: each redis-sentinel trigger's list is the key the workers
    pop, on the primary the sentinels name (a real primary, replica and three
    sentinels; the chart's sentinel addresses stand for these loopback ones)."""
    from bench.sentinel import SentinelCluster
    from shared.redis_client import RedisTarget
    from shared.settings import CommonSettings

    queue = f"keda-{uuid.uuid4().hex[:6]}"
    values = {**VALUE_SETS["sentinel"], "settings": {"QUEUE_NAME": queue}}
    objects, _ = render(renderer, values, tmp_path)
    spec = next(o for o in objects if o["kind"] == "ScaledObject")["spec"]
    triggers = [t for t in spec["triggers"] if t["type"] == "redis-sentinel"]
    assert [t["metadata"]["listName"] for t in triggers] == served_lists(queue)
    cluster = SentinelCluster(tmp_path / "redis").start()
    try:
        env = {k.lower(): v for k, v in cluster.env.items()}
        primary = RedisTarget.of(CommonSettings.load(**env)).client()
        settings = make_settings(cluster.env["REDIS_URL"], queue_name=queue,
                                 redis_sentinels=env["redis_sentinels"],
                                 redis_sentinel_master=env["redis_sentinel_master"])
        with running_app(settings) as app:
            api = app.test_client()
            assert api.post("/jobs?wait=0.01", data=jpeg(32, 24),
                            content_type="image/jpeg").status_code == 202
            for _ in range(3):
                assert api.post("/jobs", data=jpeg(32, 24),
                                content_type="image/jpeg").status_code == 202
        read = trigger_reader(primary, {})
        assert [read(Trigger.from_spec(t)) for t in triggers] == [1, 3]
        assert ScaledObject(spec).decide([4] + [read(Trigger.from_spec(t)) for t in triggers],
                                         current=0, now=0) >= 1  # a waiting job wakes them
    finally:
        cluster.stop()

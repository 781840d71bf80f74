"""The ScaledObject's `listName` is the live queue key: with no worker running,
N jobs submitted through the API leave exactly N entries in the Redis list the
rendered trigger names. From that length, the replicas KEDA's redis scaler asks
for (ceil(length / listLength), between min and max; none below the activation
length when min is 0) are computed and printed for N = 0, 1, 10 × listLength and
1000, for the default values and for scale to zero."""

import math
import uuid

import pytest
import redis

from tests.conftest import make_settings, running_app
from tests.deploy.chart import VALUE_SETS, build_renderer, render
from tests.support.images import jpeg


def keda_replicas(length: int, spec: dict) -> int:
    """What KEDA's redis scaler and the HPA it drives ask for at this list length."""
    meta = spec["triggers"][0]["metadata"]
    low, high = spec["minReplicaCount"], spec["maxReplicaCount"]
    if low == 0 and length <= int(meta.get("activationListLength", "0")):
        return 0  # not active: KEDA keeps (or takes) the Deployment to zero
    return min(high, max(low, math.ceil(length / int(meta["listLength"])), 1))


@pytest.fixture(scope="module")
def renderer(tmp_path_factory):
    return build_renderer(tmp_path_factory.mktemp("helm"))


@pytest.mark.parametrize("value_set", ["default", "scale-to-zero"])
def test_list_name_is_the_live_queue_and_replicas_follow_its_length(renderer, redis_url,
                                                                      tmp_path, value_set):
    queue = f"keda-{uuid.uuid4().hex[:6]}"
    values = {**VALUE_SETS[value_set], "settings": {"QUEUE_NAME": queue}}
    objects, _ = render(renderer, values, tmp_path)
    spec = next(o for o in objects if o["kind"] == "ScaledObject")["spec"]
    list_name = spec["triggers"][0]["metadata"]["listName"]
    list_length = int(spec["triggers"][0]["metadata"]["listLength"])
    client = redis.Redis.from_url(redis_url)
    body = jpeg(32, 24)
    rows = []
    # No worker consumes this queue: every submitted job stays in the list.
    with running_app(make_settings(redis_url, queue_name=queue)) as app:
        api = app.test_client()
        submitted = 0
        for target in (0, 1, 10 * list_length, 1000):
            while submitted < target:
                assert api.post("/jobs", data=body, content_type="image/jpeg").status_code == 202
                submitted += 1
            length = client.llen(list_name)
            assert length == target
            rows.append((target, length, keda_replicas(length, spec)))
    client.delete(list_name)
    print(f"\n{value_set}: listName={list_name!r} listLength={list_length} "
          f"min={spec['minReplicaCount']} max={spec['maxReplicaCount']}")
    for jobs, length, replicas in rows:
        print(f"  {jobs:5d} jobs submitted -> LLEN {length:5d} -> KEDA asks for {replicas} workers")
    replicas = [r for _, _, r in rows]
    assert replicas[-1] == spec["maxReplicaCount"]
    assert replicas[2] == min(10, spec["maxReplicaCount"])
    assert replicas[0] == spec["minReplicaCount"]

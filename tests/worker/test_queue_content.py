"""Only JSON is accepted off the queue: a pickled message pushed onto the queue by
hand is refused by the real worker, never unpickled, and jobs keep flowing."""

import pathlib
import uuid

from kombu import Connection

from bench.stack import await_condition
from shared.celery_app import CLASSIFY_TASK
from tests.conftest import WORKER_QUEUE
from tests.support.images import jpeg


class TouchOnUnpickle:
    """Unpickling this creates a file: proof that pickle ran, if it ever does."""

    def __init__(self, path: pathlib.Path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def test_a_pickled_message_is_refused_not_run(worker, redis_url, client, tmp_path):
    marker = tmp_path / "unpickled"
    task_id = str(uuid.uuid4())
    with Connection(redis_url) as connection:
        connection.Producer().publish(
            ((), {"top_k": TouchOnUnpickle(marker), "created_at": 0.0}, {}),
            routing_key=WORKER_QUEUE, serializer="pickle",
            headers={"lang": "py", "task": CLASSIFY_TASK, "id": task_id, "root_id": task_id,
                     "parent_id": None, "group": None, "retries": 0, "eta": None,
                     "expires": None, "argsrepr": "()", "kwargsrepr": "{}"},
        )
    await_condition(lambda: "untrusted content of type pickle" in worker.log(), 30,
                    "the worker's refusal")
    assert not marker.exists()
    assert worker.alive()
    job = client.post("/jobs?wait=30", data=jpeg(), content_type="image/jpeg").get_json()
    assert job["status"] == "succeeded"

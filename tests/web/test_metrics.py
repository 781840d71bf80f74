"""The web tier's /metrics through the Flask app: route templates, never raw paths;
rejections by reason; submissions by form; no key needed."""

import uuid

from prometheus_client.parser import text_string_to_metric_families

from tests.support.images import jpeg
from web.services import services


def samples(client) -> dict:
    text = client.get("/metrics").get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_requests_are_counted_by_route_template(idle_client):
    before = samples(idle_client)
    job_id = idle_client.post("/jobs", data=jpeg(64, 48),
                              content_type="image/jpeg").get_json()["id"]
    idle_client.get(f"/jobs/{job_id}")
    idle_client.get(f"/jobs/{uuid.uuid4()}")
    idle_client.get("/no/such/path")
    after = samples(idle_client)
    label_values = {v for (_, labels) in after for _, v in labels}
    assert job_id not in label_values and "/no/such/path" not in label_values

    def grew(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("resq_http_requests_total", route="/jobs/<job_id>", method="GET", status="200") == 1
    assert grew("resq_http_requests_total", route="/jobs/<job_id>", method="GET", status="404") == 1
    assert grew("resq_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert grew("resq_jobs_submitted_total", form="raw", lane="batch") == 1
    assert grew("resq_rejections_total", reason="job_not_found") == 1
    assert grew("resq_http_request_duration_seconds_count", route="/jobs", method="POST",
                wait="no") == 1
    queue = services(idle_client.application).settings.queue_name
    assert value(after, "resq_queue_length", lane="batch", queue=queue) >= 1


def test_waits_are_counted_by_outcome(idle_client):
    before = samples(idle_client)
    idle_client.post("/jobs?wait=0.2", data=jpeg(64, 48), content_type="image/jpeg")
    after = samples(idle_client)
    # A job whose client waits went to the interactive lane.
    assert value(after, "resq_jobs_submitted_total", form="raw", lane="interactive") \
        - value(before, "resq_jobs_submitted_total", form="raw", lane="interactive") == 1
    assert value(after, "resq_waits_total", outcome="timeout") \
        - value(before, "resq_waits_total", outcome="timeout") == 1
    assert value(after, "resq_http_request_duration_seconds_count", route="/jobs",
                 method="POST", wait="yes") \
        - value(before, "resq_http_request_duration_seconds_count", route="/jobs",
                method="POST", wait="yes") == 1


def test_the_wait_label_reads_wait_as_the_handler_does(idle_client):
    """`wait` in the duration histogram says whether the request really waited, by the
    same parser the handler uses (web/wait_param.py): `?wait=0.0` and a `Prefer: wait=0`
    do not wait, and neither does a preference the server ignores."""
    asked = [({"query_string": "wait=0.0"}, "no"), ({"query_string": "wait=no"}, "no"),
             ({"headers": {"Prefer": "wait=0"}}, "no"),
             ({"headers": {"Prefer": "wait=soon"}}, "no"),
             ({"query_string": "wait=0.1"}, "yes")]
    for request, label in asked:
        before = samples(idle_client)
        idle_client.post("/jobs", data=jpeg(64, 48), content_type="image/jpeg", **request)
        after = samples(idle_client)
        counted = {waited: value(after, "resq_http_request_duration_seconds_count",
                                 route="/jobs", method="POST", wait=waited)
                   - value(before, "resq_http_request_duration_seconds_count",
                           route="/jobs", method="POST", wait=waited)
                   for waited in ("yes", "no")}
        assert counted[label] == 1 and sum(counted.values()) == 1, (request, counted)

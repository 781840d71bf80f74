import pytest

from shared.api_models import JobStatus


@pytest.mark.parametrize("state,status", [
    ("PENDING", JobStatus.QUEUED), ("STARTED", JobStatus.STARTED),
    ("SUCCESS", JobStatus.SUCCEEDED), ("FAILURE", JobStatus.FAILED),
    ("REVOKED", JobStatus.FAILED),
])
def test_celery_states_map_to_job_statuses(state, status):
    assert JobStatus.from_celery_state(state) is status


def test_only_succeeded_and_failed_are_terminal():
    assert [s.value for s in JobStatus if s.is_terminal()] == ["succeeded", "failed"]

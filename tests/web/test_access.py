"""API keys, job ownership and rate limits, against the real app and Redis."""

import hashlib
import uuid

import pytest

from tests.conftest import make_settings, running_app
from tests.support.images import jpeg

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-0123456789abcdef00"
CAROL = "carol-key-0123456789abcdef"  # configured by its hash only


def _auth(key):
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture()
def keyed(redis_url):
    carol_hash = hashlib.sha256(CAROL.encode()).hexdigest()
    settings = make_settings(redis_url, queue_name=f"keys-{uuid.uuid4().hex[:6]}",
                             api_keys=f"{ALICE}, {BOB}, sha256:{carol_hash}")
    with running_app(settings) as app:
        yield app.test_client()


def _submit(client, headers):
    return client.post("/jobs", data=jpeg(64, 48), content_type="image/jpeg", headers=headers)


@pytest.mark.parametrize("headers", [
    {}, _auth("wrong-key-0123456789abcdef"), _auth(""), {"Authorization": f"Basic {ALICE}"},
    {"X-API-Key": ALICE[:-1]}, _auth(ALICE.upper()), {"Authorization": ALICE},
])
def test_every_jobs_call_needs_a_valid_key(keyed, headers):
    for response in (_submit(keyed, headers), keyed.get(f"/jobs/{uuid.uuid4()}", headers=headers),
                     keyed.delete(f"/jobs/{uuid.uuid4()}", headers=headers)):
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("headers", [_auth(ALICE), {"X-API-Key": ALICE}, _auth(CAROL)])
def test_a_valid_key_in_either_header_or_by_its_hash_is_accepted(keyed, headers):
    response = _submit(keyed, headers)
    assert response.status_code == 202
    assert keyed.get(f"/jobs/{response.get_json()['id']}", headers=headers).status_code == 200


def test_a_job_is_visible_only_to_the_key_that_made_it(keyed):
    job_id = _submit(keyed, _auth(ALICE)).get_json()["id"]
    for other in (BOB, CAROL):
        assert keyed.get(f"/jobs/{job_id}", headers=_auth(other)).status_code == 404
        cancel = keyed.delete(f"/jobs/{job_id}", headers=_auth(other))
        assert cancel.status_code == 404
        assert cancel.get_json()["error"]["code"] == "job_not_found"
    # Bob's cancel did nothing: the job is still Alice's, still queued.
    assert keyed.get(f"/jobs/{job_id}", headers=_auth(ALICE)).get_json()["status"] == "queued"
    assert keyed.delete(f"/jobs/{job_id}", headers=_auth(ALICE)).get_json()["status"] == "failed"


def test_probes_and_docs_need_no_key(keyed):
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert keyed.get(path).status_code == 200


def test_the_settings_never_echo_a_key():
    from shared.settings import SettingsError
    from web.settings import WebSettings

    with pytest.raises(SettingsError) as caught:
        WebSettings.load(api_keys="tooshort-secret")
    assert "API_KEYS" in str(caught.value) and "tooshort-secret" not in str(caught.value)


@pytest.fixture()
def limited(redis_url):
    settings = make_settings(redis_url, queue_name=f"limits-{uuid.uuid4().hex[:6]}",
                             api_keys=f"{ALICE},{BOB}", rate_limit="3/minute")
    with running_app(settings) as app:
        yield app.test_client()


def test_a_key_over_its_rate_limit_gets_429_with_retry_after(limited):
    answers = [_submit(limited, _auth(ALICE)).status_code for _ in range(5)]
    assert answers == [202, 202, 202, 429, 429]
    response = limited.get(f"/jobs/{uuid.uuid4()}", headers=_auth(ALICE))
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # Limits are per key: Bob is not slowed by Alice.
    assert _submit(limited, _auth(BOB)).status_code == 202


def _images(count):
    import io

    return {"image": [(io.BytesIO(jpeg(64, 48)), f"{n}.jpg") for n in range(count)]}


def test_every_image_of_a_multipart_request_counts_against_the_limit(redis_url):
    # 10 images a minute: a request with 8 fits, then one with 3 does not (it would
    # be 11), one with 2 does, and then nothing more, not even one image.
    settings = make_settings(redis_url, queue_name=f"limits-{uuid.uuid4().hex[:6]}",
                             api_keys=ALICE, rate_limit="10/minute")
    with running_app(settings) as app:
        client = app.test_client()
        answers = [client.post("/jobs", data=_images(n), headers=_auth(ALICE)).status_code
                   for n in (8, 3, 2, 1)]
        # A stranger's multipart body is not parsed to be counted: one unit, then 401.
        stranger = client.post("/jobs", data=_images(3), headers=_auth("not-a-key-0123456789"))
    assert answers == [202, 429, 202, 429]
    assert stranger.status_code == 401


def test_without_keys_the_limit_is_per_client_address(redis_url):
    settings = make_settings(redis_url, queue_name=f"limits-{uuid.uuid4().hex[:6]}",
                             rate_limit="2/minute")
    with running_app(settings) as app:
        client = app.test_client()
        here = [_submit(client, {}).status_code for _ in range(3)]
        elsewhere = client.post("/jobs", data=jpeg(64, 48), content_type="image/jpeg",
                                environ_base={"REMOTE_ADDR": "127.0.0.9"})
    assert here == [202, 202, 429]
    assert elsewhere.status_code == 202
    assert client.get("/healthz").status_code == 200  # probes are not limited


def test_the_default_limit_never_refuses_one_client_below_the_services_speed(redis_url):
    """One backend (or everything behind one NAT) polling and submitting as fast as
    the test client goes, far past the 27 jobs/s two cores serve: never a 429 under
    the default (the old default refused it past 50 requests a second)."""
    from web.settings import WebSettings

    default = WebSettings.model_fields["rate_limit"].default
    settings = make_settings(redis_url, queue_name=f"limits-{uuid.uuid4().hex[:6]}",
                             rate_limit=default)
    with running_app(settings) as app:
        client = app.test_client()
        job_id = _submit(client, {}).get_json()["id"]
        answers = {client.get(f"/jobs/{job_id}").status_code for _ in range(300)}
    assert answers == {200}

"""The OpenAPI document is generated from the models that validate requests."""

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from shared.api_models import Job, UrlSubmission
from tests.support.browser import chromium


def test_openapi_document_describes_the_api(client):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) >= {"/jobs", "/jobs/{job_id}", "/healthz", "/readyz"}
    assert set(document["paths"]["/jobs/{job_id}"]) == {"get", "delete"}
    content = document["paths"]["/jobs"]["post"]["requestBody"]["content"]
    assert set(content) == {"multipart/form-data", "image/*", "application/json"}
    schemas = document["components"]["schemas"]
    assert set(schemas["Job"]["properties"]) == set(Job.model_fields)
    assert schemas["Job"]["properties"]["status"] == {"$ref": "#/components/schemas/JobStatus"}
    assert schemas["JobStatus"]["enum"] == ["queued", "started", "succeeded", "failed"]
    assert set(schemas["UrlSubmission"]["properties"]) == set(UrlSubmission.model_fields)
    assert schemas["SubmitOptions"]["properties"]["top_k"]["maximum"] == 20


def test_every_ref_resolves(client):
    document = client.get("/openapi.json").get_json()
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"].rsplit("/", 1)[1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs and refs <= set(document["components"]["schemas"])


def test_docs_page_and_its_assets_are_served_locally(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "text/html" in page.content_type
    html = page.get_data(as_text=True)
    assert "/openapi.json" in html and "swagger-ui-bundle.js" in html
    asset = client.get("/docs/static/swagger-ui-bundle.js")
    assert asset.status_code == 200 and b"SwaggerUIBundle" in asset.get_data()


@pytest.mark.browser
def test_docs_page_renders_every_operation_in_chromium(http_service, tmp_path):
    """What a person sees at /docs: Swagger UI with the API's title and each
    operation, not "Unable to render this definition" (Swagger UI 4 cannot read
    the OpenAPI 3.1 that /openapi.json declares)."""
    with chromium() as browser:
        browser.get(http_service + "/docs")
        operations = WebDriverWait(browser, 30).until(
            lambda b: b.find_elements(By.CSS_SELECTOR, ".opblock-summary")
            or b.find_elements(By.CSS_SELECTOR, ".errors-wrapper"))
        browser.save_screenshot(str(tmp_path / "docs.png"))
        page_text = browser.find_element(By.TAG_NAME, "body").text
        assert "Unable to render" not in page_text
        shown = {(op.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text,
                  op.find_element(By.CSS_SELECTOR, ".opblock-summary-path")
                  .get_attribute("data-path"))
                 for op in operations}
        title = browser.find_element(By.CSS_SELECTOR, ".info .title").text
    document = requests.get(http_service + "/openapi.json", timeout=10).json()
    expected = {(method.upper(), path) for path, item in document["paths"].items()
                for method in item}
    assert ("POST", "/jobs") in shown and ("GET", "/jobs/{job_id}") in shown
    assert shown == expected
    assert title.startswith(document["info"]["title"])

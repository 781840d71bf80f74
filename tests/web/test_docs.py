"""The OpenAPI document is generated from the models that validate requests."""

from shared.jobs import Job, UrlSubmission


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

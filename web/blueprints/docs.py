"""`/openapi.json` and `/docs`, an interactive page for it: Swagger UI 5, which
renders OpenAPI 3.1, served from the files the flask-swagger-ui package ships
(no CDN: the page works without internet)."""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Blueprint, jsonify, send_from_directory

from web.services import services

bp = Blueprint("docs", __name__)

# Swagger UI's own distribution (swagger-ui-dist), as the package carries it.
SWAGGER_UI_DIR = Path(flask_swagger_ui.__file__).parent / "dist"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>resq API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>"""


@bp.get("/openapi.json")
def openapi():
    return jsonify(services().openapi)


@bp.get("/docs")
def docs():
    return _PAGE, 200, {"Content-Type": "text/html; charset=utf-8"}


@bp.get("/docs/static/<path:filename>")
def docs_static(filename: str):
    return send_from_directory(SWAGGER_UI_DIR, filename)

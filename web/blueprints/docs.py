"""`/openapi.json` and `/docs`, an interactive page for it (Swagger UI, served from
the swagger-ui-bundle package so it works without internet)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, send_from_directory
from swagger_ui_bundle import swagger_ui_path

bp = Blueprint("docs", __name__)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>resq API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui"});</script>
</body></html>"""


@bp.get("/openapi.json")
def openapi():
    return jsonify(current_app.extensions["resq.openapi"])


@bp.get("/docs")
def docs():
    return _PAGE, 200, {"Content-Type": "text/html; charset=utf-8"}


@bp.get("/docs/static/<path:filename>")
def docs_static(filename: str):
    return send_from_directory(swagger_ui_path, filename)

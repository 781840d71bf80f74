"""`/`: the browser page. Pick or drop images (or paste a URL), and watch each job
finish with its top-5 as labelled bars. Plain HTML and JavaScript from
`web/page/`, no build step; it talks to the same `/jobs` API as every client."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory

PAGE_DIR = Path(__file__).resolve().parent.parent / "page"

bp = Blueprint("page", __name__)

# The page loads nothing from elsewhere, and nothing may frame it.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; "
                               "style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


@bp.get("/")
def index():
    response = send_from_directory(PAGE_DIR, "index.html")
    response.headers.update(_HEADERS)
    return response


@bp.get("/page/<any('app.js', 'style.css'):filename>")
def asset(filename: str):
    response = send_from_directory(PAGE_DIR, filename)
    response.headers.update(_HEADERS)
    return response

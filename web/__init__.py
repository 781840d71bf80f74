"""The web tier: a Flask app that validates submissions, records and enqueues jobs
and answers with their state. It never imports torch.

Importing the package is cheap on purpose: gunicorn loads `web.gunicorn_conf`
(and so this package) before it may set up Prometheus's multiprocess mode, and
nothing here may import prometheus_client before that."""

from __future__ import annotations


def create_app(settings=None):
    """Build the Flask app (`web.app.create_app`)."""
    from web.app import create_app as build

    return build(settings)

"""What both tiers import: settings, the Celery app, job schemas, image checks and
the job records kept in Redis. Nothing here is specific to one tier."""

# The one place the version is written (pyproject.toml reads it from here).
__version__ = "0.1.0"

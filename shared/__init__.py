"""What both tiers import: settings, the Celery app, job schemas, image checks and
the job records kept in Redis. Nothing here is specific to one tier."""

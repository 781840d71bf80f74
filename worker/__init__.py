"""The worker tier: a Celery worker that loads ResNet50 once per pool process and
classifies the images of the jobs it takes."""

"""Celery workers: `celery_app.py` (configuration) and `tasks.py` (the one workflow task)."""

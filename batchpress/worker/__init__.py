"""The Celery application and the worker process's lifecycle hooks."""

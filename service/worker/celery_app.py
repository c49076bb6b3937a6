"""The Celery app: late acks, one message at a time, redelivery when a worker dies.

`visibility_timeout` must exceed the longest stage, or Redis hands a running job to a
second worker (which then waits: the job's lease keeps it from running twice).
"""

from __future__ import annotations

from celery import Celery

from service.settings import Settings

QUEUE = "safetylock"


def make_celery(settings: Settings) -> Celery:
    if settings.broker_url is None:
        raise ValueError("SAFETYLOCK_BROKER_URL is not set: cluster mode needs a Redis broker")
    app = Celery("safetylock", broker=settings.broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": max(1, min(10, settings.visibility_timeout // 4)),
            "unacked_restore_throttle": 1,
        },
    )
    return app

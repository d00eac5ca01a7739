"""A Celery app with a Redis broker and result backend, acks_late: the no-op task of the
throughput comparison. ``BENCH_REDIS_URL`` picks the Redis database."""

from __future__ import annotations

import os

from celery import Celery

REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")

app = Celery("clawhub_bench", broker=REDIS, backend=REDIS)
app.conf.update(
    task_acks_late=True,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=600,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop(i: int) -> int:
    """Nothing: the task's whole cost is the framework's."""
    return i

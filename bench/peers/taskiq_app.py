"""A taskiq broker on NATS JetStream (taskiq-nats) with its NATS object-store result
backend: the no-op task of the throughput comparison. ``BENCH_NATS_URL`` is the server."""

from __future__ import annotations

import os

from taskiq_nats import NATSObjectStoreResultBackend, PullBasedJetStreamBroker

URL = os.environ.get("BENCH_NATS_URL", "nats://127.0.0.1:4222")

broker = PullBasedJetStreamBroker(
    URL, subject="bench_tasks", stream_name="bench_tasks"
).with_result_backend(NATSObjectStoreResultBackend(URL, bucket_name="bench_results"))


@broker.task(task_name="bench.noop")
async def noop(i: int) -> int:
    """Nothing: the task's whole cost is the framework's."""
    return i

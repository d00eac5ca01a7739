"""A process that sets up the OpenTelemetry SDK's in-memory exporter itself (no OTLP
endpoint), then runs a hub and two agents in it: ``flaky`` fails its first attempt, the
retry is done by whoever gets it. Prints the finished spans as JSON lines for
tests/test_traces.py (the in-memory exporter sees only its own process: hence a process of
its own, so the pytest process never gets a tracer provider).

``python tests/trace_inmemory.py DATA_DIR``
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agents_sdk import Agent, HubClient, TaskContext
from clawhub.runtime import Hub
from clawhub.runtime.trace import TaskTraces
from clawhub.settings import HubSettings
from protocols import SubmitTasks, TaskSpec, encode, subjects

EXPORTER = InMemorySpanExporter()


async def main(data: Path) -> None:
    hub = Hub(HubSettings(data_dir=data / "hub", heartbeat_interval=0.5))
    assert isinstance(hub.traces, TaskTraces), hub.traces
    await hub.start()
    agents: list[Agent] = []
    failed: list[int] = []
    try:
        for name, level in (("flaky", 1.0), ("steady", 0.6)):
            agent = Agent(name, id=name, skills={"x": level}, data_dir=data / name)

            @agent.handler
            async def work(ctx: TaskContext, who: str = name) -> object:
                if who == "flaky" and not failed:
                    failed.append(ctx.attempt)
                    raise RuntimeError("boom")
                return {"by": who}

            await agent.start(hub.url, timeout=60)
            agents.append(agent)
        async with HubClient(hub.url) as client:
            await client.submit(TaskSpec(id="t1", title="retried", skills={"x": 0.1}))
            status = await client.wait("t1", timeout=120)
            assert status.state.value == "done", status
            # garbage in a traceparent header is ignored, not fatal: the task still runs
            assert hub.nc is not None
            junk = SubmitTasks(tasks=[TaskSpec(id="t2", title="junk header", skills={"x": 0.1})])
            subject = subjects.api(hub.group, subjects.ANON_SENDER, subjects.API_SUBMIT)
            reply = await hub.nc.request(
                subject, encode(junk), timeout=30, headers={"traceparent": "00-junk-01"}
            )
            assert b"claw.v1.api.submitted" in reply.data, reply.data
            status = await client.wait("t2", timeout=120)
            assert status.state.value == "done", status
    finally:
        for agent in agents:
            await agent.stop(drain=True)
        await hub.stop()
    for span in EXPORTER.get_finished_spans():
        ctx = span.get_span_context()
        assert ctx is not None
        print(
            json.dumps(
                {
                    "name": span.name,
                    "trace_id": f"{ctx.trace_id:032x}",
                    "span_id": f"{ctx.span_id:016x}",
                    "parent_id": f"{span.parent.span_id:016x}" if span.parent else "",
                    "status": span.status.status_code.name,
                    "attributes": dict(span.attributes or {}),
                }
            )
        )
    loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry.exporter"))
    print(json.dumps({"exporters_loaded": loaded}))


if __name__ == "__main__":
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)
    asyncio.run(main(Path(sys.argv[1])))

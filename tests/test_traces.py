"""Traces (issue 15, item 4): OpenTelemetry spans for a task's whole path, joined across
processes by a W3C ``traceparent``.

Design of the test, and why: the OpenTelemetry SDK's in-memory exporter sees only the spans
of its own process, and a tracer provider, once set, stays set for the whole pytest process
(every later hub in it would trace). So every process here is a real one with the real
OTLP/HTTP exporter turned on by ``OTEL_EXPORTER_OTLP_ENDPOINT``, as a user runs it, and the
test holds a real collector (``tests/otlp_collector.py``: an HTTP server decoding the
exporter's protobuf with ``opentelemetry-proto``) that receives the spans of all of them:
``clawhub up``, a model agent with a tool on NATS (``tests/trace_agents.py writer``) and a
reviewer agent on the gateway's WebSocket (``... reviewer``). The submitter is this test,
under a span of its own (the API only, no SDK: nothing is exported from here), so the trace
id it chose must come back on every span of every process.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from otlp_collector import OtlpCollector, SpanRecord
from test_first_hour import background

from agents_sdk import HubClient
from protocols import SubmitTasks, TaskSpec, TaskState, ValidationStep, WsOffer, WsRequest

ROOT = Path(__file__).resolve().parent.parent
CLI = (sys.executable, "-m", "clawhub.cli")
AGENTS = Path(__file__).with_name("trace_agents.py")
WAIT = 120.0
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
ROOT_SPAN = 0x00F067AA0BA902B7
#: The caller's span of a REST call, sent as its ``traceparent`` HTTP header.
REST_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def collector() -> Iterator[OtlpCollector]:
    with OtlpCollector() as c:
        yield c


def user_env(tmp_path: Path, collector: OtlpCollector) -> dict[str, str]:
    """A home of its own, no CLAWHUB_* settings, the exporter pointed at the collector and
    exporting every 100 ms (the default is 5 s)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CLAWHUB_", "OTEL_"))}
    return {
        **clean,
        "HOME": str(home),
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }


def wait_for_text(log: Path, text: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT
    while text not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"no {text!r} in {log.name}:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)


def cli(env: dict[str, str], *args: str) -> str:
    run = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False
    )
    assert run.returncode == 0, f"clawhub {' '.join(args)}: {run.stdout}\n{run.stderr}"
    return run.stdout.strip()


def children(spans: list[SpanRecord], parent: SpanRecord, name: str) -> list[SpanRecord]:
    return [s for s in spans if s.parent_id == parent.span_id and s.name == name]


def one(spans: list[SpanRecord], name: str, **attrs: object) -> SpanRecord:
    found = [
        s
        for s in spans
        if s.name == name and all(s.attributes.get(k) == v for k, v in attrs.items())
    ]
    assert len(found) == 1, f"{name} {attrs}: {found}"
    return found[0]


async def test_one_trace_follows_a_task_across_the_hub_and_two_agent_processes(
    tmp_path: Path, collector: OtlpCollector
) -> None:
    env = user_env(tmp_path, collector)
    hub_file = Path(env["HOME"]) / ".clawhub" / "hub.json"
    with contextlib.ExitStack() as stack:
        up_log = tmp_path / "up.log"
        up = stack.enter_context(
            background([*CLI, "up"], {**env, "OTEL_SERVICE_NAME": "hub"}, up_log)
        )
        wait_for_text(up_log, "Ctrl-C to stop", up)
        info = json.loads(hub_file.read_text())
        ws_url = info["gateway"].replace("http://", "ws://")
        for role, url in (("writer", info["url"]), ("reviewer", ws_url)):
            token = cli(env, "token", "create", "--role", "agent", "--agent-id", role)
            log = tmp_path / f"{role}.log"
            agent_env = {**env, "CLAWHUB_TOKEN": token, "OTEL_SERVICE_NAME": role}
            cmd = [sys.executable, str(AGENTS), role, url, str(tmp_path / role)]
            proc = stack.enter_context(background(cmd, agent_env, log))
            wait_for_text(log, "ready", proc)

        # the caller's span: the API's non-recording span, exported by nobody, whose
        # traceparent HubClient sends in the submit request's NATS header
        caller = SpanContext(TRACE_ID, ROOT_SPAN, is_remote=False, trace_flags=TraceFlags(1))
        spec = TaskSpec(
            id="traced",
            title="Count the words",
            skills={"text": 0.5},
            input="one two three four",
            validation=[ValidationStep(kind="reviewer")],
        )
        async with HubClient(info["url"], token=info["token"]) as client:
            with trace.use_span(NonRecordingSpan(caller)):
                await client.submit([spec])
            status = await client.wait("traced", timeout=WAIT)
        assert status.state == TaskState.DONE, status

        # REST: the traceparent HTTP header is the parent of the hub's submit span
        body = SubmitTasks(tasks=[spec.model_copy(update={"id": "over-rest"})])
        async with httpx.AsyncClient(timeout=WAIT) as http:
            answer = await http.post(
                f"{info['gateway']}/v1/api/submit",
                content=body.model_dump_json(),
                headers={
                    "Authorization": f"Bearer {info['token']}",
                    "Content-Type": "application/json",
                    "traceparent": REST_PARENT,
                },
            )
        assert answer.status_code == 200, answer.text

        want = {
            ("hub", "clawhub.submit"),
            ("hub", "clawhub.task"),
            ("hub", "clawhub.offer"),
            ("hub", "clawhub.result"),
            ("hub", "clawhub.validation"),
            ("hub", "clawhub.done"),
            ("writer", "claw.agent.handle"),
            ("writer", "claw.model.call"),
            ("writer", "claw.tool.call"),
            ("reviewer", "claw.agent.handle"),
        }

        def complete(spans: list[SpanRecord]) -> bool:
            over_rest = [s for s in spans if s.attributes.get("clawhub.task_ids") == ["over-rest"]]
            return (
                bool(over_rest)
                and want <= {(s.service, s.name) for s in spans}
                and (
                    sum(s.name == "clawhub.result" for s in spans) >= 2
                    and sum(s.name == "claw.model.call" for s in spans) >= 2
                )
            )

        spans = collector.wait("every span of the task", complete, WAIT)
    [rest] = [s for s in spans if s.attributes.get("clawhub.task_ids") == ["over-rest"]]
    assert (rest.name, rest.trace_id, rest.parent_id) == (
        "clawhub.submit",
        *REST_PARENT.split("-")[1:3],
    )
    spans = [s for s in collector.snapshot() if s.trace_id == f"{TRACE_ID:032x}"]
    assert want <= {(s.service, s.name) for s in spans}, "a process's spans left the trace"
    assert {s.service for s in spans} == {"hub", "writer", "reviewer"}

    # the tree: caller → submit → task → offer → writer's handler → model and tool calls,
    # → the result → validation; the review task, its offer, the reviewer's handler, ...
    submit = one(spans, "clawhub.submit")
    assert submit.parent_id == f"{ROOT_SPAN:016x}"  # the caller's traceparent arrived
    assert submit.attributes["clawhub.task_ids"] == ["traced"]
    task = one(spans, "clawhub.task", **{"clawhub.task_id": "traced"})
    assert task.parent_id == submit.span_id and task.attributes["clawhub.outcome"] == "done"
    [offer] = children(spans, task, "clawhub.offer")
    assert offer.attributes["clawhub.agent_id"] == "writer"
    assert offer.attributes["clawhub.outcome"] == "running"
    [handle] = children(spans, offer, "claw.agent.handle")
    assert handle.service == "writer" and handle.attributes["clawhub.task_id"] == "traced"
    model_calls = children(spans, handle, "claw.model.call")
    assert len(model_calls) == 2
    assert {m.attributes["gen_ai.request.model"] for m in model_calls} == {"openai/scripted"}
    assert sum(m.attributes["gen_ai.usage.input_tokens"] for m in model_calls) == 40
    [tool] = children(spans, handle, "claw.tool.call")
    assert tool.attributes["gen_ai.tool.name"] == "word_count"
    assert tool.attributes["clawhub.ok"] is True
    [result] = children(spans, handle, "clawhub.result")  # the agent's traceparent arrived
    assert result.service == "hub" and result.attributes["clawhub.state"] == "validating"
    [validation] = children(spans, result, "clawhub.validation")
    assert validation.attributes["clawhub.outcome"] == "done"
    # the review is a task of its own, submitted while the result was taken
    [review] = children(spans, result, "clawhub.task")
    [review_offer] = children(spans, review, "clawhub.offer")
    assert review_offer.attributes["clawhub.agent_id"] == "reviewer"
    # over the WebSocket: the offer's traceparent in WsOffer, the result's in WsRequest
    [review_handle] = children(spans, review_offer, "claw.agent.handle")
    assert review_handle.service == "reviewer"
    [review_result] = children(spans, review_handle, "clawhub.result")
    assert review_result.attributes["clawhub.accepted"] is True
    [done] = children(spans, task, "clawhub.done")
    assert done.service == "hub"
    # every span's parent is in the trace, but the caller's (which nobody exported)
    ids = {s.span_id for s in spans} | {f"{ROOT_SPAN:016x}"}
    assert all(s.parent_id in ids for s in spans), [s for s in spans if s.parent_id not in ids]


def test_in_memory_exporter_sees_a_failed_attempt_and_its_retry_in_one_trace(
    tmp_path: Path,
) -> None:
    """A program's own tracer provider (the SDK's in-memory exporter, tests/trace_inmemory.py
    in a process of its own) gets the spans; no OTLP exporter is loaded. A failed attempt's
    span is an error, the retry is a second offer in the same trace, and a junk traceparent
    header on a submit is ignored (a trace of its own), not fatal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLAWHUB_"))}
    run = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("trace_inmemory.py")), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=WAIT * 2,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    lines = [json.loads(line) for line in run.stdout.splitlines()]
    assert lines[-1] == {"exporters_loaded": []}
    spans = lines[:-1]
    [task] = [
        s
        for s in spans
        if s["name"] == "clawhub.task" and s["attributes"]["clawhub.task_id"] == "t1"
    ]
    assert task["attributes"]["clawhub.outcome"] == "done"
    trace_spans = [s for s in spans if s["trace_id"] == task["trace_id"]]
    offers = sorted(
        (s for s in trace_spans if s["name"] == "clawhub.offer"),
        key=lambda s: s["attributes"]["clawhub.attempt"],
    )
    assert [o["attributes"]["clawhub.attempt"] for o in offers] == [1, 2]
    assert offers[0]["attributes"]["clawhub.agent_id"] == "flaky"
    handles = {
        s["attributes"]["clawhub.attempt"]: s
        for s in trace_spans
        if s["name"] == "claw.agent.handle"
    }
    assert (
        handles[1]["status"] == "ERROR" and handles[1]["attributes"]["clawhub.agent_id"] == "flaky"
    )
    assert handles[2]["status"] != "ERROR"
    assert [handles[n]["parent_id"] for n in (1, 2)] == [o["span_id"] for o in offers]
    results = [s for s in trace_spans if s["name"] == "clawhub.result"]
    assert sorted(r["attributes"]["clawhub.state"] for r in results) == ["done", "ready"]
    assert sum(s["name"] == "clawhub.done" for s in trace_spans) == 1
    # the junk header: a submit span with no parent, a trace of its own, the task done
    [junk] = [
        s
        for s in spans
        if s["name"] == "clawhub.submit" and s["attributes"].get("clawhub.task_ids") == ["t2"]
    ]
    assert junk["parent_id"] == "" and junk["trace_id"] != task["trace_id"]
    [t2] = [
        s
        for s in spans
        if s["name"] == "clawhub.task" and s["attributes"]["clawhub.task_id"] == "t2"
    ]
    assert t2["attributes"]["clawhub.outcome"] == "done"


def test_a_malformed_traceparent_is_refused_in_the_envelope() -> None:
    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    frame = WsRequest.model_validate({"id": "r1", "message": {}, "traceparent": good})
    assert frame.traceparent == good
    for bad in ("nonsense", good.upper(), good + "-00", "00-xyz"):
        with pytest.raises(ValueError, match="traceparent"):
            WsRequest.model_validate({"id": "r1", "message": {}, "traceparent": bad})
    schema = WsOffer.model_json_schema()
    assert "traceparent" in schema["properties"]


def test_tracing_off_imports_nothing_and_hooks_do_nothing(tmp_path: Path) -> None:
    """No endpoint and no tracer provider: a hub and an agent load no opentelemetry
    module, and the hub's hooks are the no-op ones."""
    code = f"""
import sys
from clawhub.runtime import Hub
from clawhub.runtime.trace import NO_TRACES
from clawhub.settings import HubSettings
import agents_sdk
from agents_sdk import _trace
hub = Hub(HubSettings(data_dir={str(tmp_path)!r}))
assert hub.traces is NO_TRACES, hub.traces
assert hub.traces.observe not in hub.observers
assert _trace.headers() is None and _trace.traceparent() is None
with _trace.span("x") as span:
    assert span is None
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
assert not loaded, loaded
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CLAWHUB_"))}
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


MARK = re.compile(
    r'^<!-- traces-test: terminal (\d+)(?:, ready when "(.*)")?(?:, expect "(.*)")? -->$'
)


def traces_section() -> str:
    page = (ROOT / "docs" / "operations.md").read_text()
    return page.split("\n## Traces\n", 1)[1].split("\n## ", 1)[0]


def test_the_traces_section_runs_as_written(tmp_path: Path, collector: OtlpCollector) -> None:
    """docs/operations.md#traces pasted into three terminals, the collector's address for
    the page's ``http://127.0.0.1:4318``: the trace of the task arrives, from both services."""
    lines = traces_section().split("\n")
    steps: list[tuple[str, str | None, str | None]] = []
    for i, line in enumerate(lines):
        if mark := MARK.match(line):
            assert lines[i + 1] == "```bash", lines[i + 1]
            end = lines.index("```", i + 2)
            code = "\n".join(lines[i + 2 : end]).replace(
                "http://127.0.0.1:4318", collector.endpoint
            )
            steps.append((code, mark.group(2), mark.group(3)))
    assert len(steps) == 3
    env = {**user_env(tmp_path, collector), "PATH": os.environ["PATH"]}
    del env["OTEL_EXPORTER_OTLP_ENDPOINT"]  # only the page's commands set it
    with contextlib.ExitStack() as stack:
        for n, (code, ready, expect) in enumerate(steps):
            log = tmp_path / f"terminal{n}.log"
            if ready is not None:
                proc = stack.enter_context(background(["bash", "-c", code], env, log))
                wait_for_text(log, ready, proc)
                continue
            run = subprocess.run(
                ["bash", "-c", code],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=env,
                timeout=WAIT,
                check=False,
            )
            assert run.returncode == 0 and expect and expect in run.stdout, run
        names = {
            ("clawhub", "clawhub.submit"),
            ("clawhub", "clawhub.done"),
            ("echo", "claw.agent.handle"),
        }

        def arrived(spans: list[SpanRecord]) -> bool:
            return names <= {(s.service, s.name) for s in spans}

        spans = collector.wait("the task's trace from both services", arrived, WAIT)
    done = one(spans, "clawhub.done", **{"clawhub.task_id": "hello"})
    handle = one(spans, "claw.agent.handle", **{"clawhub.task_id": "hello"})
    assert handle.trace_id == done.trace_id
    assert {s.service for s in spans if s.trace_id == done.trace_id} == {"clawhub", "echo"}


def test_the_operations_page_documents_traces() -> None:
    section = traces_section()
    for span in (
        "clawhub.submit",
        "clawhub.task",
        "clawhub.offer",
        "claw.agent.handle",
        "claw.model.call",
        "claw.tool.call",
        "clawhub.result",
        "clawhub.validation",
        "clawhub.done",
    ):
        assert span in section, span
    assert re.search(r"OTEL_EXPORTER_OTLP_ENDPOINT=http://\S+:4318", section)

"""The event loop of hub and agent processes: uvloop when installed, unless CLAWHUB_LOOP says
``asyncio``; a choice that cannot be had is a clear error, not a silent fallback."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import subprocess
import sys
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import hub_settings
from pydantic import ValidationError
from typer.testing import CliRunner

from agents_sdk import HubClient
from agents_sdk import _loop as sdk_loop
from agents_sdk.errors import SDKError
from clawhub.cli.app import app
from clawhub.errors import HubError
from clawhub.runtime import Hub
from clawhub.runtime import loop as hub_loop
from clawhub.runtime.nats_server import EmbeddedNats
from clawhub.settings import HubSettings
from clawhub.store import Store
from protocols import TaskSpec

HERE = Path(__file__).parent
uvloop = pytest.importorskip("uvloop")  # the dev extra installs it (clawhub[fast])


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_auto_runs_on_uvloop_and_asyncio_opts_out() -> None:
    assert hub_loop.run(_loop_module()) == "uvloop"
    assert hub_loop.run(_loop_module(), "asyncio") == "asyncio.unix_events"
    assert sdk_loop.run(_loop_module()) == "uvloop"
    assert sdk_loop.run(_loop_module(), "asyncio") == "asyncio.unix_events"


def test_the_sdk_reads_clawhub_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWHUB_LOOP", "asyncio")
    assert sdk_loop.run(_loop_module()) == "asyncio.unix_events"
    monkeypatch.setenv("CLAWHUB_LOOP", "UVLOOP")
    assert sdk_loop.run(_loop_module()) == "uvloop"
    monkeypatch.setenv("CLAWHUB_LOOP", "trio")
    with pytest.raises(SDKError, match="CLAWHUB_LOOP='trio'"):
        sdk_loop.loop_factory()


def test_the_hub_setting_refuses_an_unknown_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWHUB_LOOP", "asyncio")
    assert HubSettings().loop == "asyncio"
    monkeypatch.setenv("CLAWHUB_LOOP", "trio")
    with pytest.raises(ValidationError, match="loop"):
        HubSettings()


def test_uvloop_asked_for_but_missing_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "uvloop" else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    # auto falls back to asyncio's loop; asking for uvloop says how to get it
    assert hub_loop.run(_loop_module()) == "asyncio.unix_events"
    assert sdk_loop.run(_loop_module(), "auto") == "asyncio.unix_events"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the coroutine is closed, not left "never awaited"
        with pytest.raises(HubError, match=r"clawhub\[fast\]"):
            hub_loop.run(_loop_module(), "uvloop")
        with pytest.raises(SDKError, match=r"clawhub\[fast\]"):
            sdk_loop.run(_loop_module(), "uvloop")


def test_clawhub_demo_refuses_an_unknown_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAWHUB_LOOP", "trio")
    result = CliRunner().invoke(app, ["demo", "--timeout", "5"])
    assert result.exit_code == 2
    assert "bad setting" in result.output and "loop" in result.output
    assert "'asyncio'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _spawn(url: str, choice: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(HERE / "loop_agent_proc.py"), url, f"on-{choice}"],
        stdin=subprocess.DEVNULL,
        env={**os.environ, "CLAWHUB_LOOP": choice},
    )


@pytest.fixture
async def loop_hub(
    nats_server: EmbeddedNats, sqlite_store: Store, tmp_path: Path
) -> AsyncIterator[Hub]:
    h = Hub(hub_settings(nats_server, tmp_path), store=sqlite_store)
    await h.start()
    yield h
    await h.stop()


@pytest.mark.parametrize(
    ("choice", "expected"), [("auto", "uvloop"), ("asyncio", "asyncio.unix_events")]
)
async def test_an_agent_process_does_a_task_on_the_chosen_loop(
    loop_hub: Hub, choice: str, expected: str
) -> None:
    proc = _spawn(loop_hub.url, choice)
    try:
        async with HubClient(loop_hub.url) as client:
            [tid] = await client.submit(TaskSpec(title="which loop", skills={"loop": 0.5}))
            status = await client.wait(tid, timeout=30)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 10)
    assert status.state.value == "done"
    assert status.output == expected
    assert status.assigned_to is None and status.history[-1].agent_id == f"on-{choice}"

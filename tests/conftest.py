"""Fixtures: a real nats-server on a free port, a real store (SQLite file, PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import sqlalchemy as sa
import uvicorn
from nats.aio.client import Client as NATS

from clawhub.gateway import HubProcess
from clawhub.runtime import EmbeddedNats, Hub
from clawhub.settings import HubSettings
from clawhub.store.store import Store, normalise_url

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

PG_ENV = "CLAWHUB_TEST_POSTGRES_URL"

#: Seconds before pytest-timeout ends a test at which its asyncio tasks are printed.
DUMP_AHEAD = 15.0


def _dump_asyncio_tasks(nodeid: str) -> None:
    """Print the stack of every task of the event loop the main thread runs, to stderr
    (captured, so the failure report shows it). pytest-timeout prints the threads' stacks,
    where a hung ``await`` shows as the loop waiting in ``select``: this shows the await."""
    frame = sys._current_frames().get(threading.main_thread().ident or 0)
    loop = None
    while frame is not None and loop is None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, asyncio.AbstractEventLoop):
            loop = candidate
        frame = frame.f_back
    print(f"\n+++ {nodeid}: about to time out; asyncio tasks +++", file=sys.stderr)
    if loop is None:
        print("(the main thread runs no event loop)", file=sys.stderr)
        return
    for _ in range(5):  # the loop's thread may change the set under us
        try:
            tasks = list(asyncio.all_tasks(loop))
            break
        except RuntimeError:
            continue
    else:
        return
    for task in tasks:
        print(f"--- {task!r}", file=sys.stderr)
        task.print_stack(limit=30, file=sys.stderr)


@pytest.fixture(autouse=True)
def _tasks_dumped_before_timeout(request: pytest.FixtureRequest) -> Iterator[None]:
    """Arms a timer just short of the test's pytest-timeout (set up first and torn down
    last, so it covers the other fixtures' teardown too) that prints its asyncio tasks."""
    marker = request.node.get_closest_marker("timeout")
    timeout = float(marker.args[0] if marker and marker.args else request.config.getini("timeout"))
    timer = None
    if timeout > 2 * DUMP_AHEAD:
        timer = threading.Timer(timeout - DUMP_AHEAD, _dump_asyncio_tasks, (request.node.nodeid,))
        timer.daemon = True
        timer.start()
    yield
    if timer is not None:
        timer.cancel()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    """A fresh nats-server (JetStream on, loopback, free port) for one test."""
    server = EmbeddedNats(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


def _postgres_store() -> Iterator[Store]:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set in CI: the PostgreSQL tests must run")
        pytest.skip(f"{PG_ENV} not set")
    schema = "t_" + secrets.token_hex(6)
    admin = sa.create_engine(normalise_url(url))
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    store = Store(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield store
    finally:
        store.close()
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def postgres_schema_url(prefix: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, named in the URL (``options=-csearch_path``)
    so that other processes (a replica, a CLI command) use it too; dropped afterwards."""
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set in CI: the PostgreSQL tests must run")
        pytest.skip(f"{PG_ENV} not set")
    schema = prefix + secrets.token_hex(6)
    admin = sa.create_engine(normalise_url(url))
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A real store: a SQLite file, and PostgreSQL (its own schema) where configured."""
    if request.param == "sqlite":
        s = Store(f"sqlite:///{tmp_path / 'clawhub.db'}")
        yield s
        s.close()
    else:
        yield from _postgres_store()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """A SQLite store only (for tests whose subject is not the database)."""
    s = Store(f"sqlite:///{tmp_path / 'clawhub.db'}")
    yield s
    s.close()


def hub_settings(nats: EmbeddedNats, tmp_path: Path, **overrides: object) -> HubSettings:
    """Settings for a hub on the test's nats-server, with fast liveness timers."""
    values: dict[str, object] = {
        "nats_url": nats.url,
        "nats_system_url": nats.system_url,
        "data_dir": tmp_path / "hub",
        "heartbeat_interval": 0.2,
        "missed_beats": 3,
        "accept_timeout": 2.0,
        "stall_timeout": 10.0,
        "sweep_interval": 0.05,
        "decline_backoff": 0.1,
    }
    values.update(overrides)
    return HubSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def nc(nats_server: EmbeddedNats) -> AsyncIterator[NATS]:
    """A raw nats-py connection to the test's nats-server."""
    conn = await nats.connect(nats_server.url)
    yield conn
    await conn.drain()


@pytest.fixture
async def hub(nats_server: EmbeddedNats, store: Store, tmp_path: Path) -> AsyncIterator[Hub]:
    """A running hub on the test's nats-server and store."""
    h = Hub(hub_settings(nats_server, tmp_path), store=store)
    await h.start()
    yield h
    await h.stop()


def server_settings(data_dir: Path) -> HubSettings:
    """The settings of ``hub_server``: embedded nats-server with authentication, a gateway on
    a free port, fast liveness timers."""
    return HubSettings(
        data_dir=data_dir,
        heartbeat_interval=0.2,
        missed_beats=3,
        accept_timeout=2.0,
        stall_timeout=10.0,
        sweep_interval=0.05,
        decline_backoff=0.1,
        token_refresh=0.2,
        submit_rate=5.0,
        submit_burst=20.0,
        gateway_port=0,
    )


@pytest.fixture
async def hub_server(tmp_path: Path, sqlite_store: Store) -> AsyncIterator[HubProcess]:
    """Two groups (alpha, beta) behind one embedded nats-server WITH authentication and one
    gateway on a free port: the fixture of the security and gateway tests."""
    server = HubProcess(server_settings(tmp_path / "server"), ["alpha", "beta"], store=sqlite_store)
    await server.start()
    yield server
    await server.stop()


MakeHub = Callable[..., Awaitable[Hub]]


@pytest.fixture
async def make_hub(
    nats_server: EmbeddedNats, sqlite_store: Store, tmp_path: Path
) -> AsyncIterator[MakeHub]:
    """Start hubs on the test's nats-server and SQLite store: ``await make_hub(mocks,
    **settings)``; ``mocks`` are the coordinator model's answers (litellm mock_response)."""
    from clawhub.runtime.coordinator import Coordinator

    hubs: list[Hub] = []

    async def make(mocks: list[str | Exception] | None = None, **overrides: object) -> Hub:
        settings = hub_settings(nats_server, tmp_path, **overrides)
        coordinator = Coordinator(settings, mock_responses=mocks) if mocks is not None else None
        hub = Hub(settings, store=sqlite_store, coordinator=coordinator)
        await hub.start()
        hubs.append(hub)
        return hub

    yield make
    for hub in hubs:
        await hub.stop()


async def until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    """Wait for a condition (polling; never a fixed sleep as the assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the test owns the process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """``app`` (say ``create_app(Gateway(...))`` over a ``make_hub`` hub) on uvicorn on a
    free port: its base URL."""
    web = _Server(uvicorn.Config(app, port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(web.serve())
    try:
        await until(lambda: web.started or task.done())
        yield f"http://127.0.0.1:{web.servers[0].sockets[0].getsockname()[1]}"
    finally:
        web.should_exit = True
        await task

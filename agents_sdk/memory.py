"""``Memory``: an agent's own persistent store, a SQLite file that survives restarts.

::

    agent = Agent("coder", id="coder-1", data_dir="~/agents/coder-1")

    @agent.handler
    def work(ctx: TaskContext) -> object:
        seen = ctx.memory.recall("tasks_seen", 0)
        ctx.memory.remember("tasks_seen", seen + 1)
        ctx.memory.note(f"did {ctx.spec.title}", tags=["task"], task_id=ctx.task_id)
        return [n.text for n in ctx.memory.search("parser bug", limit=3)]

The file is ``<data_dir>/memory.db``; an agent's ``data_dir`` defaults to
``$CLAWHUB_AGENTS_DIR/<agent-id>`` (``~/.clawhub/agents/<agent-id>``). Memory survives a
restart only when the agent id is the same, so give long-lived agents a fixed
``Agent(id=...)`` (a generated id has a random suffix).

Two kinds of entries:

* **facts**: ``remember(key, value)`` / ``recall(key)`` / ``forget(key)``, any JSON value;
* **notes**: free text with tags, found again by ``search(text)``: full-text search (SQLite
  FTS5, ranked by BM25) where the SQLite build has it, else word overlap.

Every method is synchronous, quick (a local file) and thread-safe, so sync handlers (which
run in a worker thread) and async handlers use the same object. The connection opens on
first use; nothing touches the disk before that.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import JsonValue

if TYPE_CHECKING:  # imported on first use (``Memory._open``): an agent that never opens its
    import sqlite3  # memory does not pay for loading SQLite

__all__ = ["AGENTS_DIR_ENV", "Memory", "Note", "default_data_dir"]

#: Environment variable naming the folder under which agents keep their data dirs.
AGENTS_DIR_ENV = "CLAWHUB_AGENTS_DIR"

#: Notes the word-overlap fallback looks at (the newest ones).
FALLBACK_SCAN = 5_000

_WORD = re.compile(r"\w+", re.UNICODE)

_STOP_TEXT = (
    "a an and are as at be but by do does did for from has have how i if in into is it its "
    "me my no not of on or our so than that the their them then there these they this to "
    "up us was we were what when where which who why will with you your"
)
#: Words too common to say what a note is about; left out of searches.
STOP_WORDS = frozenset(_STOP_TEXT.split())

_SCHEMA = """
CREATE TABLE IF NOT EXISTS facts (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    text TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '',
    task_id TEXT,
    created_at REAL NOT NULL
);
"""

_FTS_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS notes_fts USING fts5(
    text, tags, content='notes', content_rowid='id'
);
CREATE TRIGGER IF NOT EXISTS notes_ai AFTER INSERT ON notes BEGIN
    INSERT INTO notes_fts(rowid, text, tags) VALUES (new.id, new.text, new.tags);
END;
CREATE TRIGGER IF NOT EXISTS notes_ad AFTER DELETE ON notes BEGIN
    INSERT INTO notes_fts(notes_fts, rowid, text, tags)
    VALUES ('delete', old.id, old.text, old.tags);
END;
"""


def default_data_dir(agent_id: str) -> Path:
    """``$CLAWHUB_AGENTS_DIR/<agent_id>``, by default ``~/.clawhub/agents/<agent_id>``."""
    base = os.environ.get(AGENTS_DIR_ENV) or "~/.clawhub/agents"
    return Path(base).expanduser() / agent_id


@dataclass(frozen=True)
class Note:
    """One note in an agent's memory."""

    id: int
    text: str
    tags: list[str] = field(default_factory=list)
    task_id: str | None = None
    created_at: float = 0.0
    score: float = 0.0
    """How well it matched a ``search`` (higher is better; 0 outside a search)."""


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


class Memory:
    """A local SQLite store of facts and notes (see the module docstring).

    ``fts=None`` uses FTS5 when SQLite has it; ``False`` forces the word-overlap search.
    """

    def __init__(self, path: str | os.PathLike[str], *, fts: bool | None = None) -> None:
        self.path = Path(path).expanduser()
        """The SQLite file."""
        self._want_fts = fts
        self._fts = False
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        return f"<Memory {self.path}>"

    # -- the connection ---------------------------------------------------------------------

    @property
    def full_text(self) -> bool:
        """True when ``search`` uses SQLite FTS5 (opens the file)."""
        with self._db():
            return self._fts

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                self._conn = self._open()
            yield self._conn

    def _open(self) -> sqlite3.Connection:
        import sqlite3  # noqa: PLC0415 - on first use (see the module's imports)

        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=10.0, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=10000")
            conn.executescript(_SCHEMA)
            self._fts = False
            if self._want_fts is not False:
                had = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = 'notes_fts'"
                ).fetchone()
                try:
                    conn.executescript(_FTS_SCHEMA)
                    if had is None:  # index the notes written without full-text search
                        conn.execute("INSERT INTO notes_fts(notes_fts) VALUES ('rebuild')")
                    self._fts = True
                except sqlite3.OperationalError:
                    if self._want_fts:
                        raise
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        """Close the file (it opens again on the next use)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # -- facts ------------------------------------------------------------------------------

    def remember(self, key: str, value: JsonValue) -> None:
        """Store ``value`` (any JSON) under ``key``, replacing what was there."""
        data = json.dumps(value, allow_nan=False)
        with self._db() as db:
            db.execute(
                "INSERT INTO facts(key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value, "
                "updated_at=excluded.updated_at",
                (key, data, time.time()),
            )

    def recall(self, key: str, default: JsonValue = None) -> JsonValue:
        """The value stored under ``key``, else ``default``."""
        with self._db() as db:
            row = db.execute("SELECT value FROM facts WHERE key = ?", (key,)).fetchone()
        if row is None:
            return default
        value: JsonValue = json.loads(row[0])
        return value

    def forget(self, key: str) -> bool:
        """Remove a fact; True if it existed."""
        with self._db() as db:
            return db.execute("DELETE FROM facts WHERE key = ?", (key,)).rowcount > 0

    def facts(self, prefix: str = "") -> dict[str, JsonValue]:
        """Every fact whose key starts with ``prefix``."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._db() as db:
            rows = db.execute(
                "SELECT key, value FROM facts WHERE key LIKE ? ESCAPE '\\' ORDER BY key",
                (escaped + "%",),
            ).fetchall()
        return {key: json.loads(value) for key, value in rows}

    # -- notes ------------------------------------------------------------------------------

    def note(self, text: str, *, tags: list[str] | None = None, task_id: str | None = None) -> int:
        """Add a note; returns its id."""
        if not text.strip():
            raise ValueError("a note needs some text")
        tag_text = " ".join(t.strip() for t in tags or [] if t.strip())
        with self._db() as db:
            cur = db.execute(
                "INSERT INTO notes(text, tags, task_id, created_at) VALUES (?, ?, ?, ?)",
                (text, tag_text, task_id, time.time()),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def delete_note(self, note_id: int) -> bool:
        """Remove a note; True if it existed."""
        with self._db() as db:
            return db.execute("DELETE FROM notes WHERE id = ?", (note_id,)).rowcount > 0

    def notes(self, *, limit: int = 20, tag: str | None = None) -> list[Note]:
        """The newest notes first (only those carrying ``tag`` when given)."""
        with self._db() as db:
            rows = db.execute(
                "SELECT id, text, tags, task_id, created_at FROM notes "
                "ORDER BY created_at DESC, id DESC LIMIT ?",
                (limit if tag is None else FALLBACK_SCAN,),
            ).fetchall()
        found = [self._note(row) for row in rows]
        if tag is not None:
            found = [n for n in found if tag in n.tags][:limit]
        return found

    def search(self, text: str, *, limit: int = 5) -> list[Note]:
        """The notes most relevant to ``text``, best first.

        Words match case-insensitively; common words ("the", "on") are left out.
        """
        words = list(dict.fromkeys(_words(text)))
        words = [w for w in words if w not in STOP_WORDS] or words
        if not words or limit <= 0:
            return []
        with self._db() as db:
            if self._fts:
                query = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
                rows = db.execute(
                    "SELECT n.id, n.text, n.tags, n.task_id, n.created_at, "
                    "bm25(notes_fts) AS rank FROM notes_fts JOIN notes n ON n.id = notes_fts.rowid "
                    "WHERE notes_fts MATCH ? ORDER BY rank, n.id DESC LIMIT ?",
                    (query, limit),
                ).fetchall()
                return [self._note(row[:5], score=-float(row[5])) for row in rows]
            rows = db.execute(
                "SELECT id, text, tags, task_id, created_at FROM notes ORDER BY id DESC LIMIT ?",
                (FALLBACK_SCAN,),
            ).fetchall()
        wanted = set(words)
        scored: list[Note] = []
        for row in rows:
            have = set(_words(row[1] + " " + row[2]))
            overlap = len(wanted & have)
            if overlap:
                scored.append(self._note(row, score=overlap / len(wanted)))
        scored.sort(key=lambda n: (-n.score, -n.id))
        return scored[:limit]

    def count(self) -> int:
        """How many notes there are."""
        with self._db() as db:
            row = db.execute("SELECT count(*) FROM notes").fetchone()
        return int(row[0])

    @staticmethod
    def _note(row: tuple[object, ...], score: float = 0.0) -> Note:
        note_id, text, tags, task_id, created_at = row
        assert isinstance(note_id, int) and isinstance(text, str) and isinstance(tags, str)
        return Note(
            id=note_id,
            text=text,
            tags=tags.split(),
            task_id=task_id if isinstance(task_id, str) else None,
            created_at=float(created_at) if isinstance(created_at, int | float) else 0.0,
            score=score,
        )

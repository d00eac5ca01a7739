"""The hub's store writer: every row in order, committed in batches in a thread; a reply that
promises something is sent once the writes queued before it are committed (group commit),
or answered ``unavailable`` when they could not be."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable

from nats.aio.msg import Msg
from pydantic import BaseModel

from protocols import ErrorCode, ErrorReply, Ok, encode

from ..board.rows import EVENTS, TASKS, Later, Write
from ..errors import Fenced, StoreError
from ..store.lease import Lease
from ..store.store import Row, Store, resolve

log = logging.getLogger("clawhub.hub")

#: Most task ids and event kinds a refused batch names in the log.
SHOWN = 20


class StoreWriter:
    """Writes the board's rows to the store and answers requests after their commit."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[Row] = []
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self.written = 0
        """Rows queued so far (a sequence number); ``committed``: rows committed so far."""
        self.committed = 0
        self._signal = asyncio.Event()
        self._answers: list[tuple[int, Msg, BaseModel | None]] = []
        """Replies waiting for the commit of the writes queued before them (position)."""
        self.errors = 0
        self.task: asyncio.Task[None] | None = None
        """The task running ``run`` (without it, ``durable`` writes by itself)."""
        self.fence: Lease | None = None
        """A replica's lease: every batch checks it in its transaction (``Store.apply``)."""
        self.fenced: Fenced | None = None
        """Set when a batch was refused because the lease was lost: nothing more is written."""
        self.on_fenced: Callable[[Fenced], None] | None = None

    def write(self, row: Row) -> None:
        """Queue a row."""
        self._pending.append(row)
        self.written += 1
        self._signal.set()

    async def reply_after_commit(self, msg: Msg, reply: BaseModel | None) -> None:
        """Send ``reply`` to ``msg`` once the writes queued so far are committed, without
        holding up the next message: the writer answers all that its commit covers (never,
        once fenced: see ``_write_once``)."""
        if self.fenced is not None:
            return
        self._answers.append((self.written, msg, reply))
        if self.committed >= self.written:
            await self.answer(self.committed)
        else:
            self._signal.set()

    async def durable(self) -> None:
        """Wait until every write queued so far is committed (including a batch that the
        writer has already taken and is still committing)."""
        target = self.written
        if self.committed >= target:
            return
        if self.fenced is not None:
            raise self.fenced
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, fut))
        self._signal.set()
        if self.task is not None and not self.task.done():
            await fut
        else:  # the writer is not running (start-up or shutdown): write here
            await self._write_once()

    async def _write_once(self) -> None:
        # rows of records are read here, in the loop that changes them, not in the thread
        batch, self._pending = resolve(self._pending), []
        upto = self.written
        try:
            if self.fenced is not None:
                raise self.fenced
            if batch:
                await asyncio.to_thread(self.store.apply, batch, self.fence)
        except Fenced as exc:  # deposed: no row is ours to write any more, now or later
            self._pending = []
            if batch:  # what this replica would have changed (the one active now decides)
                log.error("%s; not written: %s", exc, refused(batch))
            self._fail(self.written, exc)
            # no reply either: the replica that took over got the same requests and answers
            # them (a request answered "unavailable" by us would beat its answer)
            self._answers = []
            if self.fenced is None:
                self.fenced = exc
                if self.on_fenced is not None:
                    self.on_fenced(exc)
            raise
        except StoreError as exc:
            self.errors += 1
            self._pending[:0] = batch  # keep them; try again
            self._fail(upto, exc)
            await self.answer(upto, exc)
            raise
        self.committed = max(self.committed, upto)
        for target, w in self._waiters:
            if target <= self.committed and not w.done():
                w.set_result(None)
        self._waiters = [(t, w) for t, w in self._waiters if not w.done()]
        await self.answer(self.committed)

    def _fail(self, upto: int, exc: StoreError) -> None:
        for target, w in self._waiters:
            if target <= upto and not w.done():
                w.set_exception(exc)
        self._waiters = [(t, w) for t, w in self._waiters if not w.done()]

    async def run(self) -> None:
        while True:
            await self._signal.wait()
            # let the work the same messages started go first (offers, events): the commit
            # runs in a thread that competes with this loop for the GIL
            for _ in range(3):
                await asyncio.sleep(0)
            self._signal.clear()
            if not self._pending and not self._waiters and not self._answers:
                continue
            try:
                await self._write_once()
            except Fenced:  # logged with what it refused; nothing more is written
                return
            except StoreError:
                log.exception("store write failed; retrying")
                await asyncio.sleep(0.5)
                self._signal.set()

    async def answer(self, upto: int, error: StoreError | None = None) -> None:
        """Send the replies whose writes, up to position ``upto``, are committed (or, with
        ``error``, failed to be)."""
        if not self._answers or self._answers[0][0] > upto:
            return
        done = [a for a in self._answers if a[0] <= upto]
        self._answers = [a for a in self._answers if a[0] > upto]
        for _, msg, reply in done:
            answer = reply if reply is not None else Ok()
            if error is not None:
                # nothing promised was made durable: the sender retries
                answer = ErrorReply(code=ErrorCode.UNAVAILABLE, message=str(error))
            with contextlib.suppress(Exception):
                await msg.respond(encode(answer))


def refused(batch: list[Row]) -> str:
    """What a batch refused by the fence held, in words: its rows by table, the ids of its
    tasks and the kinds of its events (the first ``SHOWN`` of each)."""
    tables: Counter[str] = Counter()
    named: dict[str, dict[str, None]] = {TASKS: {}, EVENTS: {}}
    for row in batch:
        if isinstance(row, Write | Later):
            table, values = row.table, row.values
        else:
            table, values = str(row.__tablename__), row.model_dump()
        tables[table] += 1
        if table in named:
            named[table][str(values["id" if table == TASKS else "kind"])] = None
    parts = ["rows " + ", ".join(f"{n} {table}" for table, n in sorted(tables.items()))]
    for what, names in (("tasks", list(named[TASKS])), ("events", list(named[EVENTS]))):
        if names:
            more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
            parts.append(f"{what} {', '.join(names[:SHOWN])}{more}")
    return "; ".join(parts)

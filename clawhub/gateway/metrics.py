"""Prometheus metrics of one group, in the text exposition format (written by hand: a few
counters and histograms do not need a client library).

A ``Metrics`` observes a hub's events (``Hub.observers``) and reads its board for gauges.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import TYPE_CHECKING

from protocols import Event, TaskState, attempt_runs

if TYPE_CHECKING:
    from ..runtime.hub import Hub

#: Latency buckets in seconds.
BUCKETS: tuple[float, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class Histogram:
    """A cumulative histogram with fixed buckets."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Add one observation."""
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def lines(self, name: str, labels: str) -> list[str]:
        """Its sample lines."""
        out = []
        running = 0
        for bound, n in zip((*self.buckets, float("inf")), self.counts, strict=True):
            running += n
            le = "+Inf" if bound == float("inf") else f"{bound:g}"
            out.append(f'{name}_bucket{{{labels},le="{le}"}} {running}')
        out.append(f"{name}_sum{{{labels}}} {self.total:.6f}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


class Metrics:
    """Counters and latencies of one hub, fed by its events."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.counts: Counter[str] = Counter()
        self.to_start = Histogram()
        self.to_done = Histogram()
        self.ws_agents = 0
        """Participants connected over the gateway's WebSocket now."""
        hub.observers.append(self.observe)

    def observe(self, event: Event) -> None:
        """Count one event."""
        kind = event.kind
        if kind == "task.assigned":
            self.counts["assignments"] += 1
            if (event.attempt or 0) > 1:
                self.counts["reassignments"] += 1
            if attempt_runs(kind, event.state):  # pushed (credit): assigned and running at once
                self._latency(event, self.to_start)
        elif kind == "task.revoked":
            outcome = str(event.data.get("outcome", "other"))
            self.counts[f"revoked:{outcome}"] += 1
        elif kind == "message.refused":
            self.counts[f"refused:{event.data.get('code', 'other')}"] += 1
        elif kind in ("task.running", "task.done"):
            self._latency(event, self.to_start if kind == "task.running" else self.to_done)
        elif kind == "task.submitted":
            self.counts["submitted"] += 1

    def _latency(self, event: Event, histogram: Histogram) -> None:
        rec = self.hub.board.tasks.get(event.task_id or "")
        if rec is not None:
            histogram.observe(max(0.0, event.ts - rec.created_at))

    def render(self) -> str:
        """The exposition text."""
        g = f'group="{self.hub.group}"'
        by_state = Counter(r.state for r in self.hub.board.tasks.values())
        agents = Counter(a.state for a in self.hub.board.agents.values())
        lines = [
            "# HELP clawhub_tasks Tasks by state.",
            "# TYPE clawhub_tasks gauge",
            *(f'clawhub_tasks{{{g},state="{s.value}"}} {by_state.get(s, 0)}' for s in TaskState),
            "# HELP clawhub_agents Participants by state (online = connected).",
            "# TYPE clawhub_agents gauge",
            *(
                f'clawhub_agents{{{g},state="{s}"}} {agents.get(s, 0)}'
                for s in ("online", "lost", "left")
            ),
            "# HELP clawhub_ws_agents Participants connected over the WebSocket gateway.",
            "# TYPE clawhub_ws_agents gauge",
            f"clawhub_ws_agents{{{g}}} {self.ws_agents}",
            "# HELP clawhub_tasks_submitted_total Tasks submitted.",
            "# TYPE clawhub_tasks_submitted_total counter",
            f"clawhub_tasks_submitted_total{{{g}}} {self.counts['submitted']}",
            "# HELP clawhub_assignments_total Attempts offered and accepted (task.assigned).",
            "# TYPE clawhub_assignments_total counter",
            f"clawhub_assignments_total{{{g}}} {self.counts['assignments']}",
            "# HELP clawhub_reassignments_total Assignments of a task's second or later attempt.",
            "# TYPE clawhub_reassignments_total counter",
            f"clawhub_reassignments_total{{{g}}} {self.counts['reassignments']}",
            "# HELP clawhub_stalls_total Attempts revoked because they stopped making progress.",
            "# TYPE clawhub_stalls_total counter",
            f"clawhub_stalls_total{{{g}}} {self.counts['revoked:stalled']}",
            "# HELP clawhub_revoked_total Attempts revoked, by outcome.",
            "# TYPE clawhub_revoked_total counter",
        ]
        for key in sorted(k for k in self.counts if k.startswith("revoked:")):
            lines.append(f'clawhub_revoked_total{{{g},outcome="{key[8:]}"}} {self.counts[key]}')
        lines += [
            "# HELP clawhub_refused_total Messages refused, by error code.",
            "# TYPE clawhub_refused_total counter",
        ]
        for key in sorted(k for k in self.counts if k.startswith("refused:")):
            lines.append(f'clawhub_refused_total{{{g},code="{key[8:]}"}} {self.counts[key]}')
        lines += [
            "# HELP clawhub_submit_to_start_seconds From submission to an attempt running.",
            "# TYPE clawhub_submit_to_start_seconds histogram",
            *self.to_start.lines("clawhub_submit_to_start_seconds", g),
            "# HELP clawhub_submit_to_done_seconds From submission to done.",
            "# TYPE clawhub_submit_to_done_seconds histogram",
            *self.to_done.lines("clawhub_submit_to_done_seconds", g),
        ]
        return "\n".join(lines) + "\n"

"""The garbage-collector set-up of a process that serves a hub."""

from __future__ import annotations

import gc

#: Allocations between two collections of the youngest generation (CPython: 700), and how
#: many of those before the older generations are collected (10, 10).
GC_THRESHOLDS = (20_000, 10, 10)


def tune_gc() -> None:
    """Set up the garbage collector for a process that serves a hub (``clawhub up`` calls
    it once the hub is started): what is loaded by then is frozen (never scanned again), and
    young collections run every 20,000 allocations instead of 700. The hub allocates a few
    hundred small objects per task; with CPython's defaults, collections took ~15% of its
    CPU under load (bench throughput: 523 -> 430 us of hub CPU per task)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)

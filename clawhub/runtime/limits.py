"""Token buckets: a per-requester rate limit (submissions) that costs O(1) per call."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    refused: bool = False


class RateLimiter:
    """``rate`` calls per second per key, with bursts of up to ``burst``.

    ``take(key)`` returns ``(allowed, first_refusal)``: the second is true for the first
    refusal after an allowed call, so a flood is recorded once, not once per message.
    Keys idle for a minute are forgotten.
    """

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._buckets: dict[str, _Bucket] = {}
        self._clock = time.monotonic
        self._swept = self._clock()

    def take(self, key: str, cost: float = 1.0) -> tuple[bool, bool]:
        """Spend ``cost`` from ``key``'s bucket if it has it."""
        now = self._clock()
        if now - self._swept > 60.0:
            self._sweep(now)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            bucket.refused = False
            return True, False
        first = not bucket.refused
        bucket.refused = True
        return False, first

    def retry_after(self, key: str, cost: float = 1.0) -> float:
        """Seconds until ``key`` may spend ``cost`` again."""
        bucket = self._buckets.get(key)
        if bucket is None or self.rate <= 0:
            return 0.0 if bucket is None else 1.0
        return max(0.0, (cost - bucket.tokens) / self.rate)

    def _sweep(self, now: float) -> None:
        self._swept = now
        idle = [k for k, b in self._buckets.items() if now - b.stamp > 60.0]
        for key in idle:
            del self._buckets[key]

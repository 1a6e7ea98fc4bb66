"""Sending rate: how many workers, at what pace each, and the pacer a worker keeps."""

from __future__ import annotations

import math
import random
import time


def concurrency_for(max_send_rate: float, per_worker_rate: float = 10.0, cap: int = 40) -> tuple[int, float]:
    """(MaxConcurrency, the pace of each worker in emails/s) for a campaign-wide rate.

    Workers pace themselves at 95 % of their share so the whole stays under the SES limit.
    """
    workers = max(1, min(cap, math.ceil(max_send_rate / per_worker_rate)))
    return workers, max_send_rate * 0.95 / workers


class Pacer:
    """Keeps one worker at ``rate`` emails per second (no burst above it)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at = time.monotonic()

    def wait(self) -> None:
        now = time.monotonic()
        if self.next_at > now:
            time.sleep(self.next_at - now)
        self.next_at = max(now, self.next_at) + self.interval


def backoff_delay(attempt: int, base: float = 0.1, cap: float = 2.0) -> float:
    """Full jitter: a uniform wait up to ``base * 2**attempt``, at most ``cap`` seconds."""
    return random.uniform(0, min(cap, base * 2**attempt))

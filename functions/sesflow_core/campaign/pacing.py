"""Sending rate: how many workers, at what pace each, and the pacer a worker keeps."""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque

#: emails/s one sender keeps up (render, claim, SES call: ~60 ms at 256 MB, ~40 ms of it waiting)
PER_SENDER_RATE = 12.0
#: senders per worker at most (threads of one function invocation)
MAX_SENDERS = 4
#: emails/s per worker: MAX_SENDERS senders
PER_WORKER_RATE = PER_SENDER_RATE * MAX_SENDERS
#: the share of the SES limit the workers pace at together (was 0.95: at most 95 % of the limit)
PACE_SHARE = 0.99


def concurrency_for(max_send_rate: float, per_worker_rate: float = PER_WORKER_RATE, cap: int = 40) -> tuple[int, float]:
    """(MaxConcurrency, the pace of each worker in emails/s) for a campaign-wide rate.

    As few workers as keep up: a worker's billed duration is its wall time, so a worker paced
    below what it can do pays for waiting (ADR 0014). Workers pace themselves at PACE_SHARE
    of their share: evenly spaced sends of W workers put at most W x (share + 1) in any second,
    so the whole stays at or under the SES limit, and a sleep only ever overshoots.
    """
    workers = max(1, min(cap, math.ceil(max_send_rate / per_worker_rate)))
    return workers, max_send_rate * PACE_SHARE / workers


def sender_threads(worker_rate: float) -> int:
    """Senders (threads) a worker needs for its pace; 1 when it is not paced."""
    if worker_rate <= 0:
        return 1
    return max(1, min(MAX_SENDERS, math.ceil(worker_rate / PER_SENDER_RATE)))


#: a worker starts at most its share of the SES limit in any second plus this (s): a send
#: delayed on its way (a slow request, the GIL) cannot bunch up with the next second's
WINDOW_MARGIN = 0.015


class Pacer:
    """Keeps one worker at ``rate`` emails per second (no burst above it), whatever number of
    senders (threads) share it: evenly spaced slots, and never more than the worker's share of
    the limit (``rate / PACE_SHARE``) started within 1 s + WINDOW_MARGIN."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.limit = int(rate / PACE_SHARE + 1e-9) if rate > 0 else 0
        self.next_at = time.monotonic()
        self.started: deque[float] = deque(maxlen=max(1, self.limit))
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:  # each sender takes the next slot; the sleep is outside the lock
            now = time.monotonic()
            at = max(now, self.next_at)
            if self.limit and len(self.started) == self.limit:
                at = max(at, self.started[0] + 1.0 + WINDOW_MARGIN)
            self.next_at = at + self.interval
            self.started.append(at)
        if at > now:
            time.sleep(at - now)


def backoff_delay(attempt: int, base: float = 0.1, cap: float = 2.0) -> float:
    """Full jitter: a uniform wait up to ``base * 2**attempt``, at most ``cap`` seconds."""
    return random.uniform(0, min(cap, base * 2**attempt))

"""Time as the stores record it (UTC, ISO 8601, second precision)."""

from __future__ import annotations

import time


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

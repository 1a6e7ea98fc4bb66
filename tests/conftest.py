"""Shared fixtures: one embedded local AWS for the whole session, on a free port."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sesflow.local import control
from sesflow.target import Target, local_target

from .helpers import EventCapture

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def start_stack(sdir: Path, rate: float | None = None) -> Target:
    _, started = control.up(ROOT, port=0, ses_max_send_rate=rate, sdir=sdir)
    assert started, f"a stack was already running in {sdir}"
    return local_target(ROOT, sdir)


def stop_stack(sdir: Path, target: Target) -> None:
    pid = int(target.state["pid"])
    control.down(ROOT, sdir=sdir)
    assert not (sdir / "local.json").exists(), "state file left behind"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The local stack every local test shares (started once, stopped at the end)."""
    sdir = tmp_path_factory.mktemp("sesflow-state")
    target = start_stack(sdir)
    yield target
    stop_stack(sdir, target)


def load_event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture(scope="session")
def status_capture(stack: Target) -> EventCapture:
    """Every ``Email Status Changed`` event of the shared stack, from the first test on."""
    return EventCapture(
        stack.clients, stack.outputs["EventBusName"], {"source": ["sesflow"], "detail-type": ["Email Status Changed"]}
    )

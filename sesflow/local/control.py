"""``sesflow local up|status|down``: start, inspect and stop the embedded local AWS."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sesflow.target import TargetError, load_local_state, state_dir

DEFAULT_PORT = 4577
START_TIMEOUT = 120.0


class LocalError(Exception):
    """A clear, user-facing reason why the local stack cannot be started or stopped."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _check_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the server binds this way too
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise LocalError(
                    f"port {port} is already in use on 127.0.0.1; "
                    "choose another with `sesflow local up --port P` (0 picks a free one)"
                ) from exc
            raise


def status(root: Path, sdir: Path | None = None) -> dict[str, Any] | None:
    """The running stack's state, or None; a stale state file (dead pid) is removed."""
    sdir = sdir or state_dir(root)
    state = load_local_state(root, sdir)
    if state is None:
        return None
    if not _alive(int(state["pid"])):
        (sdir / "local.json").unlink(missing_ok=True)
        return None
    return state


def up(
    root: Path,
    port: int = DEFAULT_PORT,
    ses_max_send_rate: float | None = None,
    timeout: float = START_TIMEOUT,
    sdir: Path | None = None,
) -> tuple[dict[str, Any], bool]:
    """Start the local stack in the background; return (state, started_now)."""
    sdir = sdir or state_dir(root)
    running = status(root, sdir)
    if running is not None:
        return running, False
    if not (root / "template.yaml").is_file():
        raise TargetError(f"{root}: no template.yaml")
    sdir.mkdir(parents=True, exist_ok=True)
    if port == 0:
        port = free_port()
    _check_port(port)
    for stale in ("local.error", "local.json"):
        (sdir / stale).unlink(missing_ok=True)
    outbox = sdir / "outbox"
    if outbox.is_dir():
        for item in outbox.iterdir():
            item.unlink()
    cmd = [
        sys.executable,
        "-m",
        "sesflow.local.server",
        "--root",
        str(root),
        "--state-dir",
        str(sdir),
        "--port",
        str(port),
    ]
    if ses_max_send_rate:
        cmd += ["--ses-max-send-rate", str(ses_max_send_rate)]
    log_path = sdir / "server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=root,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = load_local_state(root, sdir)
        if state is not None and state.get("pid") == proc.pid:
            return state, True
        if proc.poll() is not None:
            err = sdir / "local.error"
            reason = err.read_text().strip() if err.is_file() else _tail(log_path)
            raise LocalError(f"the local stack failed to start: {reason}")
        time.sleep(0.1)
    proc.terminate()
    raise LocalError(f"the local stack did not become ready in {timeout:.0f}s; see {log_path}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def down(root: Path, timeout: float = 15.0, sdir: Path | None = None) -> dict[str, Any] | None:
    """Stop the running stack (SIGTERM, then SIGKILL); return the state it had, or None."""
    sdir = sdir or state_dir(root)
    state = status(root, sdir)
    if state is None:
        return None
    pid = int(state["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    (sdir / "local.json").unlink(missing_ok=True)
    return state

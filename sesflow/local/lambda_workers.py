"""Lambda handlers in worker processes: the second core for the functions' own work.

The local stack is one Python process: moto, the Step Functions interpreter, event delivery
and, by default, every Lambda handler in a thread of its own, all under one GIL. A handler's
work on the client side of its AWS calls (botocore building, signing and parsing requests,
Powertools, rendering) was 29 % of that process's CPU while a campaign sent (py-spy, see
``docs/architecture.md``). Here a pool of worker processes runs invocations instead, each
one invocation at a time, as a Lambda sandbox does; an invocation's AWS calls come back to
the stack over the worker's socket and are answered by the same WSGI app the in-process
calls go through (counters, IAM with the function's own credentials, faults, moto). The
protocol is Python's ``multiprocessing.connection`` (pickled messages on a socket pair):
HTTP over loopback would cost the stack ~1 ms of CPU per request in ``http.server`` and
werkzeug's per-request thread, more than the handler work it moves away.

What stays as in-process: the invocation's environment (Globals + Environment + the role's
session keys), context, errors as Lambda returns them, the log meter, ``STATS``. What is
closer to AWS: a timed-out invocation's process is killed and replaced (AWS discards the
sandbox; a thread could only be refused further calls). What does not move: an invocation
while a Lambda fault rule is set (faults decide around each AWS call, in the stack: those run
in-process) and any invocation while every worker is busy (no queue, so nothing waits on a
pool the invocation itself would need). ``SESFLOW_LOCAL_LAMBDA_WORKERS`` sets the pool's
size (at most 6 by default, two at start; ``0``: every invocation in a thread).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import lambda_runtime

log = logging.getLogger(__name__)

#: ``answer(method, url, headers, body) -> (status, headers, content)`` (the stack's WSGI app)
Answer = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]

DEFAULT_WORKERS = 6


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a process (``VmHWM``, MB), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def request_parts(request: Any, endpoint: str) -> tuple[str, str, dict[str, str], bytes] | None:
    """``(method, url, headers, body)`` of a botocore request to ``endpoint``, else None (the
    real network's): what a ``before-send`` hook hands to the stack's app."""
    url: str = request.url
    if not (url.startswith(endpoint + "/") or url == endpoint):
        return None
    body = request.body
    if hasattr(body, "read"):
        body = body.read()
    headers = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in request.headers.items()}
    return request.method, url, headers, body or b""


class RawResponse(BytesIO):
    """A response body botocore reads as if off the wire (``moto``'s ``MockRawResponse``,
    without importing moto into a worker)."""

    def stream(self, **kwargs: Any) -> Any:
        contents = self.read()
        while contents:
            yield contents
            contents = self.read()


# ---------------------------------------------------------------- the stack's side
class _Worker:
    def __init__(self) -> None:
        parent, child = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sesflow.local.lambda_workers", str(child.fileno())],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self.conn = Connection(parent.detach())
        self._send_lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            self.conn.send(message)

    def wait_ready(self, timeout: float) -> bool:
        try:
            return bool(self.conn.poll(timeout)) and self.conn.recv() == ("ready",)
        except (EOFError, OSError):
            return False

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        with self._send_lock:  # no answer thread writes into a descriptor number reused since
            self.conn.close()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_mb(self) -> float:
        return peak_rss_mb(self.proc.pid)


class Pool:
    """Up to ``size`` worker processes, ``start`` of them at once and one more each time an
    invocation finds them all busy (Lambda adds sandboxes as concurrency grows; a stack that
    sends a few emails keeps a few). :meth:`acquire` never waits (``None``: run it in a thread)."""

    def __init__(self, size: int, answer: Answer, start: int = 2) -> None:
        self.size = size
        self.answer = answer
        self._idle: deque[_Worker] = deque()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self.peak_rss_mb: dict[int, float] = {}
        #: invocations run in a worker; those that found every worker busy (run in threads)
        self.served = self.missed = 0
        #: the threads answering the workers' AWS calls (a batch's senders call together)
        self.calls = ThreadPoolExecutor(max_workers=16 * size, thread_name_prefix="lambda-worker-call")
        self._spawning = min(start, size)
        #: workers that did not start, one after the other (3: no more are tried)
        self._failed_starts = 0
        for _ in range(self._spawning):
            self._spawn_later()

    @property
    def running(self) -> int:
        return len(self._all)

    def _spawn_later(self) -> None:
        threading.Thread(target=self._spawn, name="lambda-worker-spawn", daemon=True).start()

    def _spawn(self) -> None:
        try:
            worker = _Worker()
        except OSError as exc:  # no process to be had (a platform without fd passing, limits)
            log.warning("no Lambda worker process (%s); invocations run in threads", exc)
            with self._lock:
                self._spawning -= 1
                self._failed_starts += 1
            return
        ready = worker.wait_ready(60)
        with self._lock:
            self._spawning -= 1
            self._failed_starts = 0 if ready else self._failed_starts + 1
            if ready and not self._closed:
                self._all.append(worker)
                self._idle.append(worker)
                return
        if not ready:
            log.warning("a Lambda worker process did not start; invocations run in threads")
        worker.kill()

    def acquire(self) -> _Worker | None:
        dead: list[_Worker] = []
        with self._lock:
            while self._idle and not self._idle[0].alive:  # died while idle (the OOM killer)
                dead.append(self._idle.popleft())
                self._all.remove(dead[-1])
            worker = self._idle.popleft() if self._idle else None
            if worker is not None:
                self.served += 1
            else:
                self.missed += 1
            grow = (
                not self._closed
                and self._failed_starts < 3
                and len(self._all) + self._spawning < self.size
                and (worker is None or dead)
            )
            if grow:
                self._spawning += 1
        for gone in dead:
            gone.kill()
        if grow:
            self._spawn_later()
        return worker

    def release(self, worker: _Worker) -> None:
        with self._lock:
            if not self._closed:
                self._idle.append(worker)
                return
        worker.kill()

    def discard(self, worker: _Worker) -> None:
        """A worker that died or was killed (a timeout): a new one takes its place."""
        self.peak_rss_mb[worker.proc.pid] = worker.rss_mb()
        worker.kill()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)
            replace = not self._closed
            if replace:
                self._spawning += 1
        if replace:
            self._spawn_later()

    def rss_mb(self) -> float:
        """Resident memory (peak of each) of the workers running now and of those replaced."""
        with self._lock:
            live = {w.proc.pid: w.rss_mb() for w in self._all}
        return sum({**self.peak_rss_mb, **live}.values())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            workers, self._all = self._all, []
            self._idle.clear()
        for worker in workers:
            worker.kill()
        self.calls.shutdown(wait=False, cancel_futures=True)


def _answer_call(answer: Answer, worker: _Worker, message: tuple[Any, ...]) -> None:
    lambda_runtime.leave_invocation()  # this thread may have been started inside one
    _, number, method, url, headers, body = message
    try:
        reply: tuple[Any, ...] = ("reply", number, *answer(method, url, headers, body))
    except Exception as exc:  # the app failed: the worker sees a 500, as over HTTP
        reply = ("reply", number, 500, {}, f"local stack error: {type(exc).__name__}".encode())
    try:
        worker.send(reply)
    except OSError:
        pass  # the worker was killed meanwhile (a timeout)


def invoke(pool: Pool, worker: _Worker, spec: lambda_runtime.FunctionSpec, event: Any) -> lambda_runtime.InvokeResult:
    """Run one invocation in ``worker``, answering its AWS calls on this thread."""
    context = lambda_runtime.LambdaContext(
        function_name=spec.function_name,
        invoked_function_arn=spec.function_arn,
        memory_limit_in_mb=spec.memory_mb,
        timeout_seconds=spec.timeout,
    )
    job = {
        "code_dir": str(spec.code_dir),
        "handler": spec.handler,
        "env": lambda_runtime.invocation_environment(spec),
        "event": event,
        "context": {
            "function_name": spec.function_name,
            "invoked_function_arn": spec.function_arn,
            "memory_limit_in_mb": spec.memory_mb,
            "timeout_seconds": spec.timeout,
            "aws_request_id": context.aws_request_id,
        },
    }
    lambda_runtime.add_line_counts(spec.function_name, {"invocations": 1})
    started = time.perf_counter()
    deadline = time.monotonic() + spec.timeout
    outcome: tuple[Any, ...] | None = None
    try:
        worker.send(("invoke", job))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not worker.conn.poll(remaining):
                break  # timed out: the sandbox is discarded
            message = worker.conn.recv()
            if message[0] == "call":
                pool.calls.submit(_answer_call, pool.answer, worker, message)
            elif message[0] == "done":
                outcome = message
                break
    except (EOFError, OSError):
        outcome = ("died",)
    duration_ms = (time.perf_counter() - started) * 1000
    if outcome is None or outcome[0] == "died":
        pool.discard(worker)
    else:
        pool.release(worker)
    if outcome is None:
        return lambda_runtime.timed_out(spec, duration_ms)
    if outcome[0] == "died":
        return lambda_runtime.exited(spec, context, duration_ms)
    _, kind, value, logs = outcome
    for function_name, counts in logs.items():  # lines of earlier invocations' threads too
        lambda_runtime.add_line_counts(function_name, counts)
    if kind == "error":
        return lambda_runtime.failed(spec, value, duration_ms)
    return lambda_runtime.succeeded(spec, json.loads(value), duration_ms)


# ---------------------------------------------------------------- the worker's side
class _Channel:
    """The worker's end. A handler's threads (a batch's senders) have their calls in flight
    together, as they would over HTTP: each call carries a number, and one reader thread
    hands each reply to its caller and each new invocation to the worker's loop."""

    def __init__(self, conn: Connection, endpoint: str) -> None:
        self.conn = conn
        self.endpoint = endpoint
        self._send_lock = threading.Lock()
        self._waiting: dict[int, list[Any]] = {}
        self._numbers = itertools.count()
        self.jobs: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        threading.Thread(target=self._read, name="lambda-worker-reader", daemon=True).start()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            self.conn.send(message)

    def _read(self) -> None:
        try:
            while True:
                message = self.conn.recv()
                if message[0] == "reply":
                    slot = self._waiting.pop(message[1], None)
                    if slot is not None:
                        slot.append(message[2:])
                        slot[0].set()
                else:
                    self.jobs.put(message[1])
        except (EOFError, OSError):
            for slot in list(self._waiting.values()):
                slot.append((502, {}, b"the local stack went away"))
                slot[0].set()
            self.jobs.put(None)

    def before_send(self, request: Any, **kwargs: Any) -> Any:
        from botocore.awsrequest import AWSResponse

        parts = request_parts(request, self.endpoint)
        if parts is None:
            return None
        number = next(self._numbers)
        slot: list[Any] = [threading.Event()]
        self._waiting[number] = slot
        self.send(("call", number, *parts))
        slot[0].wait()
        status, response_headers, content = slot[1]
        return AWSResponse(parts[1], status, response_headers, RawResponse(content))


def _run(job: dict[str, Any]) -> tuple[str, Any]:
    context = lambda_runtime.LambdaContext(**job["context"])
    lambda_runtime.enter_invocation(context.function_name)
    try:
        return _outcome(job, context)
    finally:
        lambda_runtime.leave_invocation()


def _outcome(job: dict[str, Any], context: lambda_runtime.LambdaContext) -> tuple[str, Any]:
    try:
        fn = lambda_runtime.load_handler(Path(job["code_dir"]), job["handler"])
        payload = fn(job["event"], context)
    except BaseException as exc:  # as the in-process runtime: an exit is the handler's error too
        return "error", lambda_runtime.error_payload(exc)
    try:
        return "ok", json.dumps(payload)
    except (TypeError, ValueError) as exc:
        return "error", {"errorType": "Runtime.MarshalError", "errorMessage": str(exc)}


def worker_main(fd: int) -> int:
    """A worker process: wait for an invocation, run it, report; until the stack goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the stack's: it stops the workers
    conn = Connection(fd)
    base = dict(os.environ)
    # the stack's own log meter, before any handler module makes its logger: lines are counted
    # by the writing thread's invocation, and threads a handler starts are in its invocation
    lambda_runtime.install_log_meter()
    lambda_runtime.install_thread_inheritance()
    from botocore import handlers

    channel = _Channel(conn, base["AWS_ENDPOINT_URL"])
    handlers.BUILTIN_HANDLERS.append(("before-send", channel.before_send))
    import boto3  # noqa: F401 - imported once, before the first invocation's clock runs

    channel.send(("ready",))
    while True:
        job = channel.jobs.get()
        if job is None:
            return 0  # the stack stopped
        os.environ.clear()
        os.environ.update(base)
        os.environ.update(job["env"])
        kind, value = _run(job)
        sys.stdout.flush()
        try:
            channel.send(("done", kind, value, lambda_runtime.log_stats(reset=True)))
        except OSError:
            return 0


if __name__ == "__main__":
    sys.exit(worker_main(int(sys.argv[1])))

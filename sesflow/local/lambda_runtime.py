"""Run Lambda handlers in-process, the way the Lambda service would run them.

A function deployed into the local stack keeps its code location in its S3 key
(``s3://<artifacts>/<CodeUri>``), so every ``lambda:Invoke`` - from the Step Functions
interpreter, EventBridge, the CLI or any AWS client - is served by importing
``Handler`` from that folder and calling it with:

* the function's own environment (Globals + Environment), applied to the invoking
  thread only, so two stacks in one server never see each other's variables;
* a Lambda-like context (function name, ARN, memory, request id, remaining time);
* the function ``Timeout`` enforced (``Sandbox.Timedout``, as Step Functions reports it);
* errors returned as Lambda returns them (``X-Amz-Function-Error: Unhandled`` and a
  payload with ``errorType``/``errorMessage``), so ASL ``Retry``/``Catch`` match by name;
* an invocation that timed out or died makes no further AWS call (AWS freezes, then
  discards, its sandbox; a thread cannot be stopped, so its calls are refused instead), and
  :data:`CALL_HOOK` may end an invocation around any of its AWS calls
  (:mod:`sesflow.local.faults`: a crash, a timeout).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TIMEOUT_ERROR = "Sandbox.Timedout"
EXIT_ERROR = "Runtime.ExitError"


# ---------------------------------------------------------------- environment overlay
class _ThreadEnviron(MutableMapping[str, str]):
    """``os.environ`` replacement: a per-thread overlay over the process environment."""

    def __init__(self, base: MutableMapping[str, str]) -> None:
        self._base = base
        self._local = threading.local()

    def _overlay(self) -> dict[str, str] | None:
        return getattr(self._local, "overlay", None)

    def set_overlay(self, values: dict[str, str] | None) -> None:
        self._local.overlay = values

    def __getitem__(self, key: str) -> str:
        overlay = self._overlay()
        if overlay is not None and key in overlay:
            return overlay[key]
        return self._base[key]

    def __setitem__(self, key: str, value: str) -> None:
        overlay = self._overlay()
        if overlay is not None:
            overlay[key] = value
        else:
            self._base[key] = value

    def __delitem__(self, key: str) -> None:
        overlay = self._overlay()
        if overlay is not None and key in overlay:
            del overlay[key]
        else:
            del self._base[key]

    def __iter__(self) -> Iterator[str]:
        overlay = self._overlay() or {}
        yield from overlay
        yield from (k for k in self._base if k not in overlay)

    def __len__(self) -> int:
        return len(set(self._base) | set(self._overlay() or {}))

    def copy(self) -> dict[str, str]:
        return dict(self)


_environ: _ThreadEnviron | None = None


def install_environ_overlay() -> _ThreadEnviron:
    """Replace ``os.environ`` once per process with the per-thread overlay."""
    global _environ
    if _environ is None:
        _environ = _ThreadEnviron(os.environ)
        os.environ = _environ  # type: ignore[assignment]  # noqa: B003 - a view, nothing is cleared
    return _environ


# ---------------------------------------------------------------- context
@dataclass
class LambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


# ---------------------------------------------------------------- function spec + invoke
@dataclass(frozen=True)
class FunctionSpec:
    function_name: str
    function_arn: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: float
    memory_mb: int
    #: the role's session keys, set per invocation as Lambda does (:mod:`sesflow.local.iam`)
    credentials: dict[str, str] = field(default_factory=dict)


@dataclass
class InvokeResult:
    payload: Any
    error_type: str | None = None
    duration_ms: float = 0.0

    @property
    def failed(self) -> bool:
        return self.error_type is not None

    def payload_bytes(self) -> bytes:
        return json.dumps(self.payload, default=str).encode("utf-8")


_import_lock = threading.Lock()

#: function name -> [invocations, total duration in ms, memory MB] (for bench/campaign.py)
STATS: dict[str, list[float]] = {}
#: function name -> error type -> failed invocations
ERRORS: dict[str, dict[str, int]] = {}
_stats_lock = threading.Lock()


def _record(spec: FunctionSpec, duration_ms: float, error_type: str | None = None) -> None:
    with _stats_lock:
        entry = STATS.setdefault(spec.function_name, [0, 0.0, spec.memory_mb])
        entry[0] += 1
        entry[1] += duration_ms
        if error_type:
            errors = ERRORS.setdefault(spec.function_name, {})
            errors[error_type] = errors.get(error_type, 0) + 1


# ---------------------------------------------------------------- log meter
# What each function writes to stdout during its invocations (Powertools Logger JSON lines,
# EMF metric lines, prints): the log events Lambda would ingest into CloudWatch Logs, counted
# by bytes (UTF-8, newline included) and events (lines), per function and per kind: the
# Powertools level (DEBUG/INFO/WARNING/ERROR/CRITICAL), ``EMF`` or ``other``. Handlers run in
# threads of one process: a line is attributed by the writing thread's invocation.
_LOG_STATS: dict[str, dict[str, int]] = {}
_log_lock = threading.Lock()
_log_line = threading.local()
_LEVEL = re.compile(r'"level"\s*:\s*"([A-Z]+)"')


def _line_kind(line: str) -> str:
    if line.startswith("{"):
        if '"_aws"' in line:
            return "EMF"
        match = _LEVEL.search(line)
        if match:
            return match.group(1)
    return "other"


def line_counts(lines: list[str]) -> dict[str, int]:
    """``events``, ``bytes`` and ``<kind>.events``/``<kind>.bytes`` of some log lines."""
    counts = {"events": 0, "bytes": 0}
    for line in lines:
        size = len(line.encode("utf-8"))
        kind = _line_kind(line)
        counts["events"] += 1
        counts["bytes"] += size
        counts[f"{kind}.events"] = counts.get(f"{kind}.events", 0) + 1
        counts[f"{kind}.bytes"] = counts.get(f"{kind}.bytes", 0) + size
    return counts


def add_line_counts(function_name: str, counts: dict[str, int]) -> None:
    """Add what an invocation wrote (:func:`line_counts`) to ``function_name``'s log meter."""
    with _log_lock:
        entry = _LOG_STATS.setdefault(function_name, {"invocations": 0, "events": 0, "bytes": 0})
        for key, value in counts.items():
            entry[key] = entry.get(key, 0) + value


def _count_lines(function_name: str, lines: list[str]) -> None:
    add_line_counts(function_name, line_counts(lines))


def _flush_log_line(function_name: str) -> None:
    """Count a last line written without a newline (at the end of an invocation)."""
    pending: str = getattr(_log_line, "pending", "")
    _log_line.pending = ""
    if pending:
        _count_lines(function_name, [pending])


class _MeteredStdout:
    """``sys.stdout`` wrapper: counts what invocation threads write, passes everything on."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        inv = current_invocation()
        if inv is not None and text:
            pending: str = getattr(_log_line, "pending", "") + text
            *lines, rest = pending.split("\n")
            _log_line.pending = rest
            if lines:
                _count_lines(inv.function_name, [line + "\n" for line in lines])
        written: int = self._stream.write(text)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def install_log_meter() -> None:
    """Wrap ``sys.stdout`` once per process (before any handler module creates its logger)."""
    if not isinstance(sys.stdout, _MeteredStdout):
        sys.stdout = _MeteredStdout(sys.stdout)


def log_stats(reset: bool = False) -> dict[str, dict[str, int]]:
    """Function name -> ``invocations``, ``events``, ``bytes`` written to stdout by its
    invocations, and ``<kind>.events``/``<kind>.bytes`` per kind (a Powertools level, ``EMF``,
    ``other``). Platform lines (START/END/REPORT) are not written by handlers: not counted."""
    with _log_lock:
        snapshot = {name: dict(entry) for name, entry in _LOG_STATS.items()}
        if reset:
            _LOG_STATS.clear()
    return snapshot


# ---------------------------------------------------------------- invocations: end, freeze
class InvocationEnded(BaseException):
    """Raised in a handler's thread at an AWS call once its invocation has ended (timed out,
    died): handlers catch ``Exception``, never this."""


@dataclass
class Invocation:
    function_name: str
    subject: str = ""
    done: threading.Event = field(default_factory=threading.Event)
    #: None while running; "crash" or "timeout" once ended by a fault, "frozen" after a timeout
    ended: str | None = None

    def end(self, effect: str) -> None:
        self.ended = self.ended or effect
        self.done.set()
        raise InvocationEnded(effect)


_current = threading.local()

#: ``(function name, "service:Operation" | "return", subject) -> (effect, when) | None``, set
#: by :mod:`sesflow.local.faults`; effect ``crash`` | ``timeout``, when ``before`` | ``after`` | ``return``
CALL_HOOK: Any = None


def current_invocation() -> Invocation | None:
    return getattr(_current, "invocation", None)


def enter_invocation(function_name: str) -> None:
    """This thread runs an invocation of ``function_name`` (a Lambda worker's loop): its log
    lines, and those of the threads it starts, are counted for it."""
    _current.invocation = Invocation(function_name)
    _log_line.pending = ""


def leave_invocation() -> None:
    """This thread works for the stack from now on (a worker's loop between invocations, a pool
    thread that may have been started inside an invocation and so inherited it): its last line
    counted, no invocation, the process's environment."""
    inv = current_invocation()
    if inv is not None:
        _flush_log_line(inv.function_name)
    _current.invocation = None
    if _environ is not None:
        _environ.set_overlay(None)


def _guarded_api_call(original: Any) -> Any:
    def make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
        inv = current_invocation()
        if inv is None:
            return original(self, operation_name, api_params)
        if inv.ended:
            raise InvocationEnded(inv.ended)
        fault = None
        if CALL_HOOK is not None:
            fault = CALL_HOOK(
                inv.function_name, f"{self.meta.service_model.service_name}:{operation_name}", inv.subject
            )
        if fault and fault[1] == "before":
            inv.end(fault[0])
        response = original(self, operation_name, api_params)
        if fault:
            inv.end(fault[0])
        return response

    make_api_call._sesflow_guard = True  # type: ignore[attr-defined]
    return make_api_call


def install_call_guard() -> None:
    """Route every botocore call of the process through the invocation guard (idempotent)."""
    from botocore.client import BaseClient

    original = getattr(BaseClient, "_make_api_call")  # noqa: B009 - private: mypy does not know it
    if not getattr(original, "_sesflow_guard", False):
        setattr(BaseClient, "_make_api_call", _guarded_api_call(original))  # noqa: B010


def load_handler(code_dir: Path, handler: str) -> Any:
    """Import ``module.function`` from ``code_dir``, as the Lambda runtime does."""
    module_name, _, func_name = handler.rpartition(".")
    if not module_name or not func_name:
        raise ValueError(f"Bad handler {handler!r}: expected 'module.function'")
    with _import_lock:
        code_path = str(code_dir)
        if code_path not in sys.path:
            sys.path.append(code_path)
        module = importlib.import_module(module_name)
    fn = getattr(module, func_name, None)
    if fn is None or not callable(fn):
        raise AttributeError(f"Handler {handler!r}: module has no callable {func_name!r}")
    return fn


def error_payload(exc: BaseException) -> dict[str, Any]:
    return {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_exception(exc)[-6:],
    }


_thread_start = threading.Thread.start


def _start_in_invocation(self: threading.Thread) -> None:
    """``Thread.start`` for threads a handler starts (a worker's senders): the new thread runs
    in the invocation, as it would in Lambda's process: the function's environment, its
    faults and timeout (``InvocationEnded`` at its next AWS call), its log lines."""
    inv = current_invocation()
    environ = _environ  # None in a Lambda worker process: its environment is the invocation's
    if inv is not None:
        overlay = environ._overlay() if environ is not None else None  # the same dict: one per function
        target = self.run

        def run() -> None:
            _current.invocation = inv
            _log_line.pending = ""
            if environ is not None:
                environ.set_overlay(overlay)
            try:
                target()
            finally:
                _flush_log_line(inv.function_name)
                if environ is not None:
                    environ.set_overlay(None)
                _current.invocation = None

        self.run = run  # type: ignore[method-assign]
    _thread_start(self)


def install_thread_inheritance() -> None:
    """Threads started by a handler inherit its invocation (once per process)."""
    if threading.Thread.start is not _start_in_invocation:
        threading.Thread.start = _start_in_invocation  # type: ignore[method-assign]


def invocation_environment(spec: FunctionSpec) -> dict[str, str]:
    """The environment an invocation of ``spec`` sees over the process's own."""
    return {
        **spec.environment,
        **spec.credentials,
        "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "LAMBDA_TASK_ROOT": str(spec.code_dir),
        "_HANDLER": spec.handler,
        # tells the functions they run on the embedded local AWS: a campaign's or an
        # enrollment's ``clock`` (time scale for tests) is allowed here only
        "SESFLOW_LOCAL_STACK": "1",
    }


def exited(spec: FunctionSpec, context: LambdaContext, duration_ms: float) -> InvokeResult:
    payload = {
        "errorType": EXIT_ERROR,
        "errorMessage": f"RequestId: {context.aws_request_id} Error: Runtime exited with error: signal: killed",
    }
    _record(spec, duration_ms, EXIT_ERROR)
    return InvokeResult(payload, error_type=EXIT_ERROR, duration_ms=duration_ms)


def timed_out(spec: FunctionSpec, duration_ms: float) -> InvokeResult:
    duration_ms = max(duration_ms, spec.timeout * 1000)
    _record(spec, duration_ms, TIMEOUT_ERROR)
    return InvokeResult(
        payload={"errorType": TIMEOUT_ERROR, "errorMessage": f"Task timed out after {spec.timeout:.2f} seconds"},
        error_type=TIMEOUT_ERROR,
        duration_ms=duration_ms,
    )


def failed(spec: FunctionSpec, payload: dict[str, Any], duration_ms: float) -> InvokeResult:
    _record(spec, duration_ms, payload["errorType"])
    return InvokeResult(payload, error_type=payload["errorType"], duration_ms=duration_ms)


def succeeded(spec: FunctionSpec, payload: Any, duration_ms: float) -> InvokeResult:
    _record(spec, duration_ms)
    return InvokeResult(payload, duration_ms=duration_ms)


#: the worker processes (:mod:`sesflow.local.lambda_workers`), set by the server; None: threads
WORKERS: Any = None
#: ``() -> bool``: whether an invocation must run in-process now (a Lambda fault rule is set)
IN_PROCESS_ONLY: Any = None


def _worker_for() -> Any:
    if WORKERS is None or (IN_PROCESS_ONLY is not None and IN_PROCESS_ONLY()):
        return None
    return WORKERS.acquire()


def invoke(spec: FunctionSpec, event: Any) -> InvokeResult:
    """Invoke ``spec``'s handler with ``event`` in a worker process if one is free, otherwise
    in a thread of this process, enforcing Timeout."""
    worker = _worker_for()
    if worker is not None:
        from . import lambda_workers

        return lambda_workers.invoke(WORKERS, worker, spec, event)
    return _invoke_in_thread(spec, event)


def _invoke_in_thread(spec: FunctionSpec, event: Any) -> InvokeResult:
    environ = install_environ_overlay()
    install_thread_inheritance()
    result: dict[str, Any] = {}
    context = LambdaContext(
        function_name=spec.function_name,
        invoked_function_arn=spec.function_arn,
        memory_limit_in_mb=spec.memory_mb,
        timeout_seconds=spec.timeout,
    )
    env = invocation_environment(spec)

    hook = CALL_HOOK
    invocation = Invocation(spec.function_name, _subject(event) if hook is not None else "")

    install_log_meter()
    add_line_counts(spec.function_name, {"invocations": 1})

    def run() -> None:
        _current.invocation = invocation
        _log_line.pending = ""
        environ.set_overlay(dict(env))
        try:
            fn = load_handler(spec.code_dir, spec.handler)
            result["payload"] = fn(event, context)
            fault = hook(spec.function_name, "return", invocation.subject) if hook is not None else None
            if fault:
                invocation.end(fault[0])
        except BaseException as exc:
            result["error"] = exc
        finally:
            _flush_log_line(spec.function_name)
            environ.set_overlay(None)
            _current.invocation = None
            invocation.done.set()

    started = time.perf_counter()
    worker = threading.Thread(target=run, name=f"lambda:{spec.function_name}", daemon=True)
    worker.start()
    finished = invocation.done.wait(spec.timeout)
    duration_ms = (time.perf_counter() - started) * 1000
    if invocation.ended == "crash":
        return exited(spec, context, duration_ms)
    if invocation.ended == "timeout" or not finished:
        invocation.ended = invocation.ended or "frozen"  # its thread runs on, but calls nothing
        return timed_out(spec, duration_ms)
    if "error" in result:
        return failed(spec, error_payload(result["error"]), duration_ms)
    try:
        json.dumps(result.get("payload"))
    except (TypeError, ValueError) as exc:
        return failed(spec, {"errorType": "Runtime.MarshalError", "errorMessage": str(exc)}, duration_ms)
    return succeeded(spec, result.get("payload"), duration_ms)


def _subject(event: Any) -> str:
    from . import faults

    return faults.subject_of(event)

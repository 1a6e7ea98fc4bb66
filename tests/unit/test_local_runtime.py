"""The in-process Lambda runtime: context, timeout, error shape, per-thread environment."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from sesflow.local import lambda_runtime as rt
from sesflow.requirements import expected

ROOT = Path(__file__).resolve().parents[2]


def spec(tmp_path: Path, body: str, timeout: float = 2.0, env: dict[str, str] | None = None) -> rt.FunctionSpec:
    mod = f"fn_{abs(hash(body)) % 10**8}"
    (tmp_path / f"{mod}.py").write_text(body)
    return rt.FunctionSpec(
        "fn", "arn:aws:lambda:us-east-1:123456789012:function:fn", tmp_path, f"{mod}.handler", env or {}, timeout, 128
    )


def test_result_and_context(tmp_path: Path) -> None:
    s = spec(
        tmp_path,
        "def handler(e, c):\n    return {'x': e['x'], 'fn': c.function_name, 'ms': c.get_remaining_time_in_millis()}\n",
    )
    res = rt.invoke(s, {"x": 1})
    assert not res.failed
    assert res.payload["x"] == 1 and res.payload["fn"] == "fn" and 0 < res.payload["ms"] <= 2000


def test_errors_come_back_as_lambda_returns_them(tmp_path: Path) -> None:
    s = spec(
        tmp_path,
        "class SesThrottled(Exception): pass\n"
        "def handler(e, c):\n    raise SesThrottled('Maximum sending rate exceeded.')\n",
    )
    res = rt.invoke(s, {})
    assert res.error_type == "SesThrottled"
    assert res.payload["errorType"] == "SesThrottled"
    assert res.payload["errorMessage"] == "Maximum sending rate exceeded."


def test_timeout_is_enforced(tmp_path: Path) -> None:
    s = spec(tmp_path, "import time\ndef handler(e, c):\n    time.sleep(5)\n", timeout=0.2)
    res = rt.invoke(s, {})
    assert res.error_type == "Sandbox.Timedout"
    assert "timed out after 0.20 seconds" in res.payload["errorMessage"]


def test_environment_is_per_invocation_thread(tmp_path: Path) -> None:
    s1 = spec(
        tmp_path,
        "import os, time\ndef handler(e, c):\n    time.sleep(0.1)\n    return os.environ['TABLE']\n",
        env={"TABLE": "one"},
    )
    s2 = rt.FunctionSpec(**{**s1.__dict__, "environment": {"TABLE": "two"}})
    out: dict[str, object] = {}
    t = threading.Thread(target=lambda: out.update(a=rt.invoke(s1, {}).payload))
    t.start()
    out["b"] = rt.invoke(s2, {}).payload
    t.join()
    assert out == {"a": "one", "b": "two"}
    assert "TABLE" not in os.environ


def test_threads_a_handler_starts_run_in_its_invocation(tmp_path: Path) -> None:
    """A handler's own threads (a campaign worker's senders) see the function's environment
    and belong to its invocation, as in Lambda's process; other threads do not."""
    s = spec(
        tmp_path,
        "import os\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "from sesflow.local import lambda_runtime as rt\n"
        "def probe(_):\n"
        "    inv = rt.current_invocation()\n"
        "    return (os.environ.get('TABLE'), inv.function_name if inv else None)\n"
        "def handler(e, c):\n"
        "    with ThreadPoolExecutor(3) as pool:\n"
        "        return sorted(set(pool.map(probe, range(6))))\n",
        env={"TABLE": "mine"},
    )
    res = rt.invoke(s, {})
    assert not res.failed and [list(p) for p in res.payload] == [["mine", "fn"]]
    seen: list[object] = []
    t = threading.Thread(target=lambda: seen.append((os.environ.get("TABLE"), rt.current_invocation())))
    t.start()
    t.join()
    assert seen == [(None, None)]


def test_unserialisable_result_is_a_marshal_error(tmp_path: Path) -> None:
    s = spec(tmp_path, "def handler(e, c):\n    return object()\n")
    assert rt.invoke(s, {}).error_type == "Runtime.MarshalError"


def test_functions_requirements_are_generated_from_pyproject() -> None:
    assert (ROOT / "functions" / "requirements.txt").read_text() == expected(ROOT)


def test_function_url_events_base64_encode_non_text_bodies_as_lambda_does() -> None:
    import io

    from sesflow.local.server import function_url_event

    def event(ctype: str, body: bytes) -> dict[str, Any]:
        environ = {
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
            "CONTENT_TYPE": ctype,
            "REQUEST_METHOD": "POST",
            "QUERY_STRING": "token=t",
        }
        return function_url_event(environ, "fn", "/")

    assert event("application/json", b'{"a": 1}')["isBase64Encoded"] is False
    assert event("text/plain; charset=utf-8", b"hi")["body"] == "hi"
    for ctype in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/octet-stream"):
        e = event(ctype, b"List-Unsubscribe=One-Click")
        assert e["isBase64Encoded"] is True and e["body"] == "TGlzdC1VbnN1YnNjcmliZT1PbmUtQ2xpY2s="

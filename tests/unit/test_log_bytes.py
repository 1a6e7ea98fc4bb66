"""bench.log_bytes: what CloudWatch Logs would bill, from log lines and history events (no stack)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import log_bytes as lb
from sesflow.local import lambda_runtime as rt

RID = "8f5c2a1e-3b4d-4c6e-9f70-1a2b3c4d5e6f"
ARN = "arn:aws:states:us-east-1:123456789012:execution:sesflow-send:e-1"


def test_each_event_costs_its_utf8_message_plus_26_bytes() -> None:
    assert lb.EVENT_OVERHEAD == 26
    assert lb.event_bytes("") == 26
    assert lb.event_bytes("abc\n") == 30
    assert lb.event_bytes("é") == 28  # UTF-8 bytes, not characters


def test_dollars_at_50_cents_per_gb() -> None:
    assert lb.dollars_per_million(lb.GB / 1e6) == 0.5  # 1 GB over a million emails
    assert round(lb.dollars_per_million(1000), 4) == 0.4657  # 1 kB per email


def test_platform_events_in_the_json_format() -> None:
    start, report = (json.loads(line) for line in lb.platform_lines(RID, 12.34, 256, 90))
    assert start == {
        "time": "2026-12-07T07:00:00.000Z",
        "type": "platform.start",
        "record": {"requestId": RID, "version": "$LATEST"},
    }
    assert report["type"] == "platform.report" and report["record"]["status"] == "success"
    assert report["record"]["metrics"] == {
        "durationMs": 12.34,
        "billedDurationMs": 13,
        "memorySizeMB": 256,
        "maxMemoryUsedMB": 90,
    }
    traced = lb.platform_lines(RID, 12.34, 256, 90, init_duration_ms=401.5, trace_id="1-6760a1b2-" + "a" * 24)
    cold = json.loads(traced[1])["record"]
    assert cold["metrics"]["initDurationMs"] == 401.5
    assert cold["tracing"]["value"].startswith("Root=1-6760a1b2-") and cold["tracing"]["value"].endswith(";Sampled=1")
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in traced)


def test_platform_bytes_per_invocation() -> None:
    # 142 + 235 message bytes and 2 x 26
    assert lb.platform_bytes(12.34, 256, 90, tracing=False) == 429
    # the tracing object of active tracing, in both events: 2 x 150 bytes more
    assert lb.platform_bytes(12.34, 256, 90) == 729


def test_the_default_log_level_leaves_the_platform_events_out() -> None:
    level, system = lb.template_log_levels()
    assert (level, system) == ("WARNING", "WARN")
    run = {
        "functions": {
            "SendFunction": {
                "invocations": 1,
                "platform": {"events": 2, "bytes": 577},
                "handler": {"INFO": {"events": 2, "bytes": 400}, "EMF": {"events": 1, "bytes": 300}},
            }
        }
    }
    assert lb.function_bytes(run, "INFO", "INFO") == (5, 1277)
    assert lb.function_bytes(run, "WARNING", "WARN") == (1, 300)  # the metric line stays


def _scheduled(**details: Any) -> dict[str, Any]:
    return {
        "id": 3,
        "previousEventId": 2,
        "type": "TaskScheduled",
        "timestamp": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
        "taskScheduledEventDetails": {"resourceType": "lambda", "resource": "invoke", "region": "us-east-1", **details},
    }


def test_sfn_record_of_a_history_event() -> None:
    record = lb.sfn_record(_scheduled(parameters='{"FunctionName":"f"}'), ARN)
    assert record == (
        '{"id":"3","type":"TaskScheduled","details":{"resourceType":"lambda","resource":"invoke",'
        '"region":"us-east-1","parameters":"{\\"FunctionName\\":\\"f\\"}"},"previous_event_id":"2",'
        f'"event_timestamp":"1767323045678","execution_arn":"{ARN}","redrive_count":"0"}}'
    )
    assert lb.event_bytes(record) == len(record.encode()) + 26


def test_sfn_record_leaves_execution_data_out() -> None:
    started = {
        "id": 1,
        "previousEventId": 0,
        "type": "ExecutionStarted",
        "timestamp": datetime(2026, 1, 2, tzinfo=UTC),
        "executionStartedEventDetails": {
            "input": '{"to": "a@example.org"}',
            "inputDetails": {"truncated": False},
            "roleArn": "arn:aws:iam::123456789012:role/r",
        },
    }
    doc = json.loads(lb.sfn_record(started, ARN))
    assert doc["details"] == {"roleArn": "arn:aws:iam::123456789012:role/r"}
    succeeded = {"id": 9, "previousEventId": 8, "type": "ExecutionSucceeded", "timestamp": datetime(2026, 1, 2)}
    assert json.loads(lb.sfn_record(succeeded, ARN))["details"] == {}


def test_machine_log_at_all_error_and_fatal() -> None:
    failed = {
        "id": 4,
        "previousEventId": 3,
        "type": "TaskFailed",
        "timestamp": datetime(2026, 1, 2, tzinfo=UTC),
        "taskFailedEventDetails": {"resourceType": "lambda", "resource": "invoke", "error": "SesThrottled"},
    }
    events = [_scheduled(), failed]
    log = lb.machine_log(events, ARN)
    sizes = [lb.event_bytes(lb.sfn_record(e, ARN)) for e in events]
    assert log["ALL"] == {"events": 2, "bytes": sum(sizes)}
    assert log["ERROR"] == {"events": 1, "bytes": sizes[1]}
    assert log["FATAL"] == {"events": 0, "bytes": 0}


def test_express_arn() -> None:
    arn = lb.express_arn(ARN)
    prefix = "arn:aws:states:us-east-1:123456789012:express:sesflow-send:e-1:"
    assert arn.startswith(prefix) and uuid.UUID(arn[len(prefix) :])


def test_child_execution_history() -> None:
    events = lb.child_events({"FunctionName": "f", "Payload": {}}, "arn:aws:iam::1:role/r", "us-east-1", 0)
    assert [e["type"] for e in events] == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    assert lb.machine_log(events, ARN)["ERROR"]["events"] == 0


def test_function_bytes_at_info_and_warning() -> None:
    run = {
        "emails": 2,
        "functions": {
            "SendFunction": {
                "invocations": 2,
                "platform": {"events": 6, "bytes": 870},
                "handler": {"INFO": {"events": 2, "bytes": 1000}, "EMF": {"events": 2, "bytes": 500}},
            }
        },
        "machineLog": {lv: {"events": 0, "bytes": 0} for lv in lb.LEVELS},
    }
    assert lb.function_bytes(run, "INFO") == (10, 2370)
    assert lb.function_bytes(run, "WARNING") == (8, 1370)  # metrics stay: they are no log level's
    s = lb.summary(run)
    # LogLevel WARNING maps to SystemLogLevel WARN: no platform events either
    assert s["functionBytesPerEmail"] == {"INFO": 1185.0, "WARNING": 250.0}


def test_the_local_runtime_counts_what_a_handler_writes(tmp_path: Path) -> None:
    name = f"fn-{uuid.uuid4().hex[:8]}"
    (tmp_path / "logging_fn.py").write_text(
        "import sys\n"
        "def handler(e, c):\n"
        '    print(\'{"level":"INFO","message":"sent"}\')\n'
        '    print(\'{"level":"WARNING","message":"slow"}\')\n'
        '    print(\'{"_aws":{"Timestamp":1}}\')\n'
        "    sys.stdout.write('no newline')\n"
    )
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
    spec = rt.FunctionSpec(name, arn, tmp_path, "logging_fn.handler", {}, 2.0, 128)
    assert not rt.invoke(spec, {}).failed
    entry = rt.log_stats()[name]
    assert entry["invocations"] == 1
    assert entry["events"] == 4
    assert entry["INFO.events"] == 1 and entry["INFO.bytes"] == len('{"level":"INFO","message":"sent"}\n')
    assert entry["WARNING.events"] == 1 and entry["EMF.events"] == 1
    assert entry["other.bytes"] == len("no newline")
    assert entry["bytes"] == sum(v for k, v in entry.items() if k.endswith(".bytes"))

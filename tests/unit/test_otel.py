"""Tracing is opt-in and free when off.

``OpenTelemetryTracing=true`` adds the AWS Lambda layer for OpenTelemetry (its wrapper script
instruments botocore before our handler is imported); ``false``, the default, adds nothing. So:

* the handler modules import neither OpenTelemetry nor the X-Ray SDK (whatever is installed);
* the template adds the layer, its wrapper and its settings to every function only when the
  parameter is ``true``, and keeps active tracing either way (skipped until the parameter lands);
* when the instrumentation is on, the SDK calls our handlers make are spans (skipped unless
  ``opentelemetry-sdk`` and ``opentelemetry-instrumentation-botocore`` are installed; they are not
  project dependencies: the layer brings its own).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
HANDLERS = (
    "validate",
    "send",
    "defer",
    "feedback",
    "unsubscribe",
    "campaign_plan",
    "campaign_send_batch",
    "campaign_control",
)
TRACING_PREFIXES = ("opentelemetry", "amazon.opentelemetry", "aws_xray_sdk")
OTEL_VARIABLES = ("AWS_LAMBDA_EXEC_WRAPPER", "OTEL_AWS_LAMBDA_FAST_START", "OTEL_AWS_APPLICATION_SIGNALS_ENABLED")


def run_python(code: str, **env: str) -> Any:
    """Run ``code`` in a fresh interpreter (no tracing variables inherited); return its JSON output."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AWS_LAMBDA_", "_HANDLER"))}
    base |= {
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "functions")]),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        **env,
    }
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=base, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_handlers_import_no_tracing_sdk_when_off() -> None:
    imports = "\n".join(f"import sesflow_handlers.{name}" for name in HANDLERS)
    loaded = run_python(
        f"import json, sys\nimport boto3\n{imports}\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({TRACING_PREFIXES!r}))))"
    )
    assert loaded == []


# ---------------------------------------------------------------- the template


def _template() -> dict[str, Any]:
    pytest.importorskip("yaml")
    from sesflow.cfn_yaml import load_template

    template = load_template(ROOT / "template.yaml")
    if "OpenTelemetryTracing" not in template.get("Parameters", {}):
        pytest.skip("template.yaml has no OpenTelemetryTracing parameter yet")
    return template


def _resolve(node: Any, conditions: dict[str, bool]) -> Any:
    """Apply Fn::If and drop AWS::NoValue, as CloudFormation does."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, yes, no = node["Fn::If"]
            return _resolve(yes if conditions[name] else no, conditions)
        out = {k: _resolve(v, conditions) for k, v in node.items()}
        return {k: v for k, v in out.items() if v != {"Ref": "AWS::NoValue"}}
    if isinstance(node, list):
        return [_resolve(v, conditions) for v in node if v != {"Ref": "AWS::NoValue"}]
    return node


def _functions(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The translated AWS::Lambda::Function properties, conditions resolved for ``parameters``."""
    pytest.importorskip("samtranslator")
    from sesflow.local import deploy

    prepared, _, _ = deploy.prepare(template, ROOT)
    cfn = deploy.translate(prepared, parameters, "us-east-1")
    tracing_on = parameters.get("OpenTelemetryTracing", template["Parameters"]["OpenTelemetryTracing"]["Default"])
    conditions = {name: False for name in cfn.get("Conditions", {})}
    conditions["UseOpenTelemetry"] = tracing_on == "true"
    return {
        logical_id: _resolve(resource["Properties"], conditions)
        for logical_id, resource in cfn["Resources"].items()
        if resource["Type"] == "AWS::Lambda::Function"
    }


def test_template_tracing_parameter_defaults_to_off_and_keeps_active_tracing() -> None:
    template = _template()
    assert template["Parameters"]["OpenTelemetryTracing"]["Default"] == "false"
    assert template["Conditions"]["UseOpenTelemetry"] == {"Fn::Equals": [{"Ref": "OpenTelemetryTracing"}, "true"]}
    assert template["Globals"]["Function"]["Tracing"] == "Active"


def test_template_off_adds_no_layer_and_no_variable() -> None:
    functions = _functions(_template(), {})
    assert functions
    for logical_id, props in functions.items():
        assert "Layers" not in props, logical_id
        variables = props["Environment"]["Variables"]
        assert not [v for v in variables if v in OTEL_VARIABLES or v.startswith("OTEL_")], logical_id
        assert props["TracingConfig"] == {"Mode": "Active"}, logical_id


def test_template_on_adds_the_layer_and_its_wrapper_to_every_function() -> None:
    functions = _functions(_template(), {"OpenTelemetryTracing": "true", "OpenTelemetryLayerVersion": "33"})
    assert functions
    for logical_id, props in functions.items():
        assert len(props.get("Layers", [])) == 1, logical_id
        assert "AWSOpenTelemetryDistroPython" in json.dumps(props["Layers"]), logical_id
        variables = props["Environment"]["Variables"]
        assert variables["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/otel-instrument", logical_id
        assert variables["OTEL_AWS_APPLICATION_SIGNALS_ENABLED"] == "false", logical_id
        assert variables["TRACKING_TABLE"], logical_id  # the other variables are still there
        assert props["TracingConfig"] == {"Mode": "Active"}, logical_id


# ---------------------------------------------------------------- the on path


def test_handler_clients_are_traced_when_botocore_is_instrumented() -> None:
    pytest.importorskip("opentelemetry.sdk")
    pytest.importorskip("opentelemetry.instrumentation.botocore")
    spans = run_python(
        """
import json
from botocore.stub import Stubber
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
BotocoreInstrumentor().instrument()

from sesflow_handlers._common import client

ses = client("sesv2")
with Stubber(ses) as stub:
    stub.add_response("send_email", {"MessageId": "m-1"})
    ses.send_email(FromEmailAddress="a@example.com", Destination={"ToAddresses": ["b@example.com"]},
                   Content={"Raw": {"Data": b"x"}})
print(json.dumps([{"name": s.name, "service": s.attributes.get("rpc.service")} for s in exporter.get_finished_spans()]))
"""
    )
    assert {"name": "SESv2.SendEmail", "service": "SESv2"} in spans

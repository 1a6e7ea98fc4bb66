"""Cold-start cost of tracing the AWS SDK calls with OpenTelemetry (`OpenTelemetryTracing=true`),
beside `bench.cold_import`'s figures and the X-Ray SDK that Powertools Tracer would import.

Every scenario runs in fresh interpreters; its figure is the median wall time of the whole
process minus that of a bare interpreter (`python -c pass`), so what runs before user code
(the layer's `opentelemetry-instrument` re-exec and its sitecustomize) is counted too. Each
scenario does the same cold-start work: `import boto3`, import the send handler module, create
a DynamoDB client and make one (stubbed, offline) call.

    off                 what every function pays today (`OpenTelemetryTracing=false`, the default)
    aws-xray-sdk        + `aws_xray_sdk.core.patch(["botocore"])` (Powertools Tracer's way)
    otel-in-package     + opentelemetry-sdk, OTLP/UDP exporter, X-Ray propagator,
                        `BotocoreInstrumentor().instrument()`, `AwsLambdaInstrumentor().instrument()`
    adot-layer-lite     the AWS Lambda layer for OpenTelemetry with `OTEL_AWS_LAMBDA_FAST_START=true`
                        (what `OpenTelemetryTracing=true` sets): its lite SDK, botocore, requests
                        and urllib3 instrumented; `, botocore only` disables the last two
    adot-layer          the same layer's default path: `opentelemetry-instrument` + full SDK
    adot-layer+appsig   the same with Application Signals on (the layer's own default)

The layer itself cannot be downloaded here: the `adot-layer*` rows run the Python packages it
ships (`aws-opentelemetry-distro`, whose version the layer follows) with the environment its
`/opt/otel-instrument` wrapper sets, which is the best available estimate. Run it with an
interpreter that has them, e.g. a throwaway venv (never the project's `.venv`):

    python3.13 -m venv /tmp/otel-venv
    /tmp/otel-venv/bin/pip install boto3==1.43.108 aws-lambda-powertools==3.37.0 \\
        email-validator==2.4.0 jinja2==3.1.6 aws-opentelemetry-distro==0.21.0 aws-xray-sdk==2.15.0
    /tmp/otel-venv/bin/python -m bench.otel_import [--runs 7]

Scenarios whose packages are missing are skipped, so the project's `.venv` prints the `off` rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"
HANDLER = "sesflow_handlers.send"
HANDLER_ROW = f"import boto3, {HANDLER}"

# The cold-start work every scenario does; the stubbed call never leaves the process.
WORK = f"""
import boto3
import {HANDLER}
from botocore.stub import Stubber
_c = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
with Stubber(_c) as _s:
    _s.add_response("get_item", {{}}, {{"TableName": "t", "Key": {{"emailId": {{"S": "e"}}}}}})
    _c.get_item(TableName="t", Key={{"emailId": {{"S": "e"}}}})
"""
# Peak RSS, then leave without the interpreter's teardown (a Lambda environment never pays it
# during a cold start; exit handlers such as span flushing belong to invocations).
RSS = """
import os, resource, sys
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
sys.stdout.flush()
os._exit(0)
"""

XRAY_SDK = """
from aws_xray_sdk.core import patch
patch(["botocore"])
"""

# What a hand-rolled, in-package setup needs to give X-Ray the same spans as the layer: parent
# context from Lambda's trace header, spans batched to the X-Ray daemon's UDP endpoint (flushed
# at the end of every invocation by the Lambda instrumentor), botocore patched.
IN_PACKAGE = """
import os
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.propagators.aws import AwsXRayLambdaPropagator
from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
from opentelemetry.instrumentation.aws_lambda import AwsLambdaInstrumentor
from amazon.opentelemetry.distro.otlp_udp_exporter import OTLPUdpSpanExporter
_tp = TracerProvider()
_tp.add_span_processor(BatchSpanProcessor(OTLPUdpSpanExporter(endpoint=os.environ["AWS_XRAY_DAEMON_ADDRESS"])))
trace.set_tracer_provider(_tp)
propagate.set_global_textmap(AwsXRayLambdaPropagator())
BotocoreInstrumentor().instrument()
AwsLambdaInstrumentor().instrument()
"""

# What the layer's handler wrapper does in the function's process before importing our handler.
LAYER_WRAPPER = """
import os
if os.environ.get("OTEL_AWS_LAMBDA_FAST_START", "false").lower() == "true":
    from amazon.opentelemetry.distro.opentelemetry_lite_sdk import configure_lite_mode
    configure_lite_mode()
from opentelemetry.instrumentation.aws_lambda import AwsLambdaInstrumentor
AwsLambdaInstrumentor().instrument()
"""

# The instrumentations the layer's wrapper disables unless told otherwise (only botocore,
# urllib/urllib3 and the Lambda one of those installed stay on).
LAYER_DISABLED = (
    "aio-pika,aiohttp-client,aiohttp-server,aiopg,asgi,asyncio,asyncpg,boto,boto3,cassandra,celery,"
    "confluent_kafka,dbapi,django,falcon,fastapi,flask,grpc_client,grpc_server,grpc_aio_client,"
    "grpc_aio_server,httpx,jinja2,kafka,logging,mysql,mysqlclient,pika,psycopg,psycopg2,pymemcache,"
    "pymongo,pymysql,pyramid,redis,remoulade,requests,sklearn,sqlalchemy,sqlite3,starlette,"
    "system_metrics,threading,tornado,tortoiseorm,wsgi,openai_agents,aws_openai_agents,aws_crewai,"
    "aws_langchain,aws_mcp,aws_llama-index,aws-lambda"
)
FUNCTION_NAME = "sesflow-SendFunction"
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": FUNCTION_NAME,
    "AWS_REGION": "us-east-1",
    # Nothing listens there: spans sent over UDP to a closed loopback port are simply dropped.
    "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
    "_HANDLER": "otel_wrapper.lambda_handler",
    "ORIG_HANDLER": f"{HANDLER}.handler",
}


def layer_env(fast_start: bool, application_signals: bool) -> dict[str, str]:
    """The variables `/opt/otel-instrument` exports before it starts the runtime."""
    env = {
        **LAMBDA_ENV,
        "OTEL_SERVICE_NAME": FUNCTION_NAME,
        "OTEL_RESOURCE_ATTRIBUTES": f"cloud.region=us-east-1,cloud.platform=aws_lambda,cloud.provider=aws,"
        f"faas.name={FUNCTION_NAME}",
        "OTEL_PROPAGATORS": "baggage,xray,tracecontext",
        "OTEL_AWS_APPLICATION_SIGNALS_RUNTIME_ENABLED": "false",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_AWS_LAMBDA_FAST_START": "true" if fast_start else "false",
        "OTEL_AWS_APPLICATION_SIGNALS_ENABLED": "true" if application_signals else "false",
    }
    if application_signals:
        env |= {"OTEL_PYTHON_DISTRO": "aws_distro", "OTEL_PYTHON_CONFIGURATOR": "aws_configurator"}
    if not fast_start:
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = LAYER_DISABLED
    return env


@dataclass
class Scenario:
    name: str
    code: str
    needs: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    instrument: bool = False  # run under `opentelemetry-instrument`, as the layer's default path does


def scenarios() -> list[Scenario]:
    return [
        Scenario("import boto3", "import boto3"),
        Scenario(HANDLER_ROW, f"import boto3, {HANDLER}"),
        Scenario("off", WORK),
        Scenario(
            "aws-xray-sdk",
            XRAY_SDK + WORK,
            ("aws_xray_sdk",),
            {"AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR", **LAMBDA_ENV},
        ),
        Scenario(
            "otel-in-package",
            IN_PACKAGE + WORK,
            ("opentelemetry.sdk", "opentelemetry.instrumentation.botocore", "amazon.opentelemetry.distro"),
            LAMBDA_ENV,
        ),
        Scenario(
            "adot-layer-lite",
            LAYER_WRAPPER + WORK,
            ("amazon.opentelemetry.distro",),
            layer_env(fast_start=True, application_signals=False),
        ),
        Scenario(
            "adot-layer-lite, botocore only",
            LAYER_WRAPPER + WORK,
            ("amazon.opentelemetry.distro",),
            {
                **layer_env(fast_start=True, application_signals=False),
                "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "requests,urllib3",
            },
        ),
        Scenario(
            "adot-layer",
            LAYER_WRAPPER + WORK,
            ("amazon.opentelemetry.distro",),
            layer_env(fast_start=False, application_signals=False),
            instrument=True,
        ),
        Scenario(
            "adot-layer+appsig",
            LAYER_WRAPPER + WORK,
            ("amazon.opentelemetry.distro",),
            layer_env(fast_start=False, application_signals=True),
            instrument=True,
        ),
    ]


def available(modules: tuple[str, ...]) -> bool:
    try:
        return all(importlib.util.find_spec(m) is not None for m in modules)
    except ModuleNotFoundError:
        return False


def command(scenario: Scenario) -> list[str]:
    code = scenario.code + RSS
    if not scenario.instrument:
        return [sys.executable, "-c", code]
    script = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
    if script is None:
        raise FileNotFoundError("opentelemetry-instrument next to the interpreter")
    # The layer runs `python3 /opt/python/bin/opentelemetry-instrument python3 bootstrap.py`.
    return [sys.executable, script, sys.executable, "-c", code]


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, int]:
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    wall = time.perf_counter() - t
    return wall, int(out.stdout.split()[-1])


def base_env() -> dict[str, str]:
    return {
        "PATH": "",
        "PYTHONPATH": str(FUNCTIONS),
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


def version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "-"


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    env0 = base_env()
    dists = (
        "boto3",
        "aws-opentelemetry-distro",
        "opentelemetry-sdk",
        "opentelemetry-instrumentation-botocore",
        "aws-xray-sdk",
    )
    print(
        f"OpenTelemetry cold start, median of {args.runs} fresh processes (Python {sys.version.split()[0]}; "
        + ", ".join(f"{d} {version(d)}" for d in dists)
        + ")"
    )
    bare = Scenario("bare interpreter", "pass")
    todo = [bare]
    for sc in scenarios():
        if available(sc.needs):
            todo.append(sc)
        else:
            print(f"  {sc.name:<36} skipped (needs {', '.join(sc.needs)})")
    runs = {sc.name: (command(sc), {**env0, **sc.env}) for sc in todo}
    for cmd, env in runs.values():  # warm the file and bytecode caches
        run_once(cmd, env)
    # Round robin, so that a neighbour's load spreads over every scenario alike.
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in runs}
    for _ in range(args.runs):
        for name, (cmd, env) in runs.items():
            samples[name].append(run_once(cmd, env))
    wall = {name: statistics.median(s[0] for s in got) for name, got in samples.items()}
    rss = {name: statistics.median(s[1] for s in got) / 1024 for name, got in samples.items()}
    print(f"  wall time minus a bare interpreter ({wall[bare.name] * 1000:.1f} ms); 'added' is over 'off'")
    costs = {name: w - wall[bare.name] for name, w in wall.items() if name != bare.name}
    base = costs["import boto3"]
    for name, cost in costs.items():
        added = (
            f"  added {(cost - costs['off']) * 1000:+6.1f} ms"
            if name not in ("import boto3", HANDLER_ROW, "off")
            else ""
        )
        ratio = cost / base
        print(f"  {name:<36} {cost * 1000:6.1f} ms  {ratio:4.2f}x import boto3  peak RSS {rss[name]:4.1f} MiB{added}")
    return costs


if __name__ == "__main__":
    main()

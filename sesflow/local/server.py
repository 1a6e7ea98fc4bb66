"""The embedded local AWS process: ``python -m sesflow.local.server`` (started by ``local up``).

It serves moto on 127.0.0.1, deploys ``template.yaml`` into it, writes the state file
(``<state dir>/local.json``) when ready and removes it on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from sesflow.target import DEFAULT_REGION, Clients

STACK_NAME = "sesflow-local"


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


URL_PREFIX = "/_sesflow/lambda-url/"


_TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/yaml")


def _is_text(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml"))


def function_url_event(environ: dict[str, Any], function: str, path: str) -> dict[str, Any]:
    """A Lambda function URL event (payload format 2.0) for one HTTP request."""
    import base64
    import uuid
    from urllib.parse import parse_qsl

    length = int(environ.get("CONTENT_LENGTH") or 0)
    raw = environ["wsgi.input"].read(length) if length else b""
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    query = environ.get("QUERY_STRING", "")
    # As Lambda does: the body is passed as text only for text content types; everything
    # else (form posts, multipart, binary, no content type) arrives base64-encoded.
    if _is_text(headers.get("content-type", "")):
        body, is_b64 = raw.decode("utf-8", "replace"), False
    else:
        body, is_b64 = base64.b64encode(raw).decode(), True
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "queryStringParameters": dict(parse_qsl(query)) or None,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": function,
            "domainName": headers.get("host", ""),
            "domainPrefix": function,
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
            "http": {
                "method": environ["REQUEST_METHOD"],
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": environ.get("REMOTE_ADDR", "127.0.0.1"),
                "userAgent": headers.get("user-agent", ""),
            },
        },
        "body": body or None,
        "isBase64Encoded": is_b64,
    }


#: (service, operation) -> requests served, for ``GET /_sesflow/stats`` (bench/campaign.py)
REQUESTS: dict[str, int] = {}


def _operation(environ: dict[str, Any]) -> str:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    service = auth.split("Credential=", 1)[1].split("/")[3] if "Credential=" in auth else "?"
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return f"{service}:{target.rsplit('.', 1)[-1]}"
    if service == "s3":
        return f"s3:{environ.get('REQUEST_METHOD', '?')}"
    if service == "lambda" and environ.get("PATH_INFO", "").endswith("/invocations"):
        return "lambda:Invoke"
    if service == "ses":
        return f"ses:{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '').split('/')[3:4]}"
    return f"{service}:{environ.get('REQUEST_METHOD', '?')}"


class FunctionUrls:
    """WSGI middleware: ``/_sesflow/lambda-url/<function>/...`` invokes the function as its
    Lambda function URL would; ``/_sesflow/stats`` reports request and invocation counts;
    everything else goes to moto."""

    def __init__(self, app: Any, region: str) -> None:
        self.app = app
        self.region = region

    def _stats(self, environ: dict[str, Any], start_response: Any) -> Any:
        from . import faults, iam, lambda_runtime, ses, shims

        pending = sum(q.pending for q in (shims.DELIVERY, shims.ASYNC) if q is not None)
        body = json.dumps(
            {
                "requests": REQUESTS,
                "lambda": lambda_runtime.STATS,
                "lambdaErrors": lambda_runtime.ERRORS,
                "deliveriesPending": pending,
                "sesEventsPending": ses._PUBLISHER.pending,
                "iam": iam.stats(),
                "faults": faults.snapshot()["injected"],
            }
        ).encode()
        if "reset" in environ.get("QUERY_STRING", ""):
            REQUESTS.clear()
            lambda_runtime.STATS.clear()
            lambda_runtime.ERRORS.clear()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def _faults(self, environ: dict[str, Any], start_response: Any) -> Any:
        """``POST /_sesflow/faults`` ``{"sesSendEmail": [{"code", "message", "status", "times"}]}``
        queues errors for the next SES SendEmail calls; ``{"seed": N, "rules": [...]}`` sets the
        seeded fault plan (:mod:`sesflow.local.faults`); ``DELETE`` clears both; ``GET`` counts
        (``?log=1``: every fault injected, with what it hit)."""
        from . import faults, ses

        method = environ.get("REQUEST_METHOD", "GET")
        status = "200 OK"
        plan: dict[str, Any] = {}
        if method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            doc = json.loads(environ["wsgi.input"].read(length) or b"{}")
            ses.set_faults(doc.get("sesSendEmail", []))
            if "rules" in doc or "seed" in doc:
                try:
                    faults.configure(doc)
                except (TypeError, ValueError) as exc:
                    status, plan = "400 Bad Request", {"error": str(exc)}
        elif method == "DELETE":
            ses.clear_faults()
            faults.clear()
        with_log = "log" in environ.get("QUERY_STRING", "")
        body = json.dumps({"sesSendEmail": len(ses.FAULTS), **faults.snapshot(with_log=with_log), **plan}).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path: str = environ.get("PATH_INFO", "")
        if path == "/_sesflow/stats":
            return self._stats(environ, start_response)
        if path == "/_sesflow/faults":
            return self._faults(environ, start_response)
        if not path.startswith(URL_PREFIX):
            op = _operation(environ)
            REQUESTS[op] = REQUESTS.get(op, 0) + 1
            return self.app(environ, start_response)
        import base64

        from . import ses

        function, _, rest = path[len(URL_PREFIX) :].partition("/")
        event = function_url_event(environ, function, "/" + rest)
        resp = ses.local_client("lambda", self.region).invoke(FunctionName=function, Payload=json.dumps(event))
        payload = json.loads(resp["Payload"].read() or b"null")
        if resp.get("FunctionError"):
            status, headers, body = 502, {"Content-Type": "application/json"}, json.dumps(payload).encode()
        elif isinstance(payload, dict) and "statusCode" in payload:
            status = int(payload["statusCode"])
            headers = {str(k): str(v) for k, v in (payload.get("headers") or {}).items()}
            text = payload.get("body") or ""
            body = base64.b64decode(text) if payload.get("isBase64Encoded") else str(text).encode()
        else:
            status, headers, body = 200, {"Content-Type": "application/json"}, json.dumps(payload).encode()
        from http import HTTPStatus

        start_response(f"{status} {HTTPStatus(status).phrase}", [*headers.items(), ("Content-Length", str(len(body)))])
        return [body]


def _make_server(port: int, region: str) -> Any:
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = FunctionUrls(DomainDispatcherApplication(create_backend_app), region)
    if os.environ.get("SESFLOW_LOCAL_IN_PROCESS_CALLS", "on") != "off":
        _serve_own_calls_in_process(app, f"http://127.0.0.1:{port}")
    return make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)


def _serve_own_calls_in_process(app: Any, endpoint: str) -> None:
    """AWS calls made inside this process (the functions, the Step Functions interpreter, event
    deliveries, the local SES) to this process's own endpoint are handed to the same WSGI app
    on the calling thread, as moto's in-memory mode does, instead of a loopback HTTP request:
    no socket, no HTTP parsing on either side, no thread per request. The request is the one
    botocore signed (the local IAM reads its credentials), it passes through the same app
    (counters, IAM, faults, moto), and the client parses the answer as it would off the wire.
    ``SESFLOW_LOCAL_IN_PROCESS_CALLS=off`` sends them over HTTP again."""
    from botocore import handlers
    from botocore.awsrequest import AWSResponse
    from moto.core.botocore_stubber import MockRawResponse
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    prefix = endpoint + "/"

    def before_send(request: Any, **kwargs: Any) -> Any:
        url: str = request.url
        if not (url.startswith(prefix) or url == endpoint):
            return None  # not ours: the real network
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        builder = EnvironBuilder(
            base_url=endpoint,
            path=url[len(endpoint) :].split("?", 1)[0] or "/",
            query_string=url.split("?", 1)[1] if "?" in url else "",
            method=request.method,
            headers={k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in request.headers.items()},
            data=body or b"",
        )
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        app_iter, status, headers = run_wsgi_app(app, environ)
        try:
            content = b"".join(app_iter)
        finally:
            if hasattr(app_iter, "close"):
                app_iter.close()
        return AWSResponse(url, int(status.split(" ", 1)[0]), dict(headers.items()), MockRawResponse(content))

    handlers.BUILTIN_HANDLERS.append(("before-send", before_send))  # every session made from now on
    import boto3

    if boto3.DEFAULT_SESSION is not None:  # and the default one, if it was made already
        boto3.DEFAULT_SESSION.events.register("before-send", before_send)


_LOCAL_DEFAULTS = {
    # seconds, not minutes, between throttled send rounds on a laptop
    "ThrottleWaitSeconds": "2",
    "QuotaWaitSeconds": "5",
    "LogRetentionDays": "1",
    # the local interpreter runs no EXPRESS child executions in a Distributed Map
    "CampaignChildExecutionType": "STANDARD",
    "CampaignPauseCheckSeconds": "1",
    # open/click tracking on: the local mailbox simulator's success+open@ / success+click@
    # labels publish Open and Click events (and the untracked configuration set is deployed)
    "EngagementTracking": "true",
    # signed webhooks on, retried after 1, 2 and 3 seconds (a test receiver sees the retries
    # and the dead-letter queue within seconds)
    "Webhooks": "true",
    "WebhookRetrySchedule": "1,2,3",
}


def local_parameters(port: int) -> dict[str, str]:
    """Template parameters of the local stack (everything else keeps its default), then any
    ``SESFLOW_PARAMETER_OVERRIDES="Key=Value Key2=Value2"`` from the environment."""
    overrides = dict(
        item.split("=", 1) for item in os.environ.get("SESFLOW_PARAMETER_OVERRIDES", "").split() if "=" in item
    )
    return {**_LOCAL_DEFAULTS, **overrides}


def bring_up(
    root: Path, state: Path, port: int, max_send_rate: float | None, stack_name: str, region: str
) -> tuple[Any, dict[str, Any]]:
    """Start the server and deploy; return (server, state document)."""
    started = time.perf_counter()
    os.environ.update(
        {
            "MOTO_PORT": str(port),
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_DISABLED": "false",
        }
    )
    os.environ.pop("AWS_PROFILE", None)
    from . import deploy, ses, shims
    from . import iam as local_iam

    shims.install()
    local_iam.install()  # each function and state machine acts with its own role
    shims.set_project_root(root, deploy.ARTIFACTS_BUCKET)
    ses.configure(state / "outbox", max_send_rate)

    server = _make_server(port, region)
    threading.Thread(target=server.serve_forever, name="moto", daemon=True).start()

    clients = Clients(region, f"http://127.0.0.1:{port}")
    deployment = deploy.deploy(clients, root, stack_name, local_parameters(port))
    params = deployment.parameters
    for identity in {params.get("SenderIdentity", ""), params.get("DefaultFromAddress", "")}:
        if identity:
            ses.verify_identity(deploy.ACCOUNT_ID, region, identity)
    bucket = deployment.outputs.get("TemplatesBucketName")
    templates = deploy.upload_templates(clients, root, bucket) if bucket else 0
    doc = {
        "endpoint": f"http://127.0.0.1:{port}",
        "port": port,
        "pid": os.getpid(),
        "region": region,
        "root": str(root),
        "stackName": stack_name,
        "stackId": deployment.stack_id,
        "outputs": deployment.outputs,
        "resources": deployment.resources,
        "parameters": params,
        "declaredWorkflowTypes": dict(shims.DECLARED_TYPES),
        "templatesUploaded": templates,
        "outbox": str(state / "outbox"),
        "sesMaxSendRate": max_send_rate,
        "startedAt": time.time(),
        "startupSeconds": round(time.perf_counter() - started, 3),
    }
    return server, doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sesflow.local.server")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ses-max-send-rate", type=float, default=None)
    parser.add_argument("--stack-name", default=STACK_NAME)
    parser.add_argument("--region", default=DEFAULT_REGION)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    state_file = args.state_dir / "local.json"
    error_file = args.state_dir / "local.error"
    try:
        server, doc = bring_up(
            args.root.resolve(), args.state_dir, args.port, args.ses_max_send_rate, args.stack_name, args.region
        )
    except Exception as exc:
        logging.exception("local stack failed to start")
        error_file.write_text(f"{type(exc).__name__}: {exc}\n")
        return 1

    stop = threading.Event()

    def _stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    _write_json_atomic(state_file, doc)
    logging.info("sesflow local stack ready on %s in %.2fs", doc["endpoint"], doc["startupSeconds"])
    stop.wait()
    server.shutdown()
    state_file.unlink(missing_ok=True)
    logging.info("sesflow local stack stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

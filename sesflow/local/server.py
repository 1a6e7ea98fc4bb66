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


#: table -> {"wru", "rru", "indexWru": {index: wru}}: the request units DynamoDB on-demand would
#: bill for the requests served (:mod:`sesflow.local.capacity`), for ``GET /_sesflow/stats``
DYNAMODB: dict[str, dict[str, Any]] = {}
_DYNAMODB_METER_LOCK = threading.Lock()
_METER_ORIGINALS: dict[tuple[Any, str], Any] = {}
_METER_FAILED: set[str] = set()
log = logging.getLogger(__name__)


def _charge(table: str, wru: float = 0.0, rru: float = 0.0, index_wru: dict[str, float] | None = None) -> None:
    with _DYNAMODB_METER_LOCK:
        entry = DYNAMODB.setdefault(table, {"wru": 0.0, "rru": 0.0, "indexWru": {}})
        entry["wru"] += wru
        entry["rru"] += rru
        for name, units in (index_wru or {}).items():
            entry["indexWru"][name] = entry["indexWru"].get(name, 0.0) + units


def _dynamodb_stats(reset: bool) -> dict[str, Any]:
    with _DYNAMODB_METER_LOCK:
        snapshot = {name: {**entry, "indexWru": dict(entry["indexWru"])} for name, entry in DYNAMODB.items()}
        if reset:
            DYNAMODB.clear()
    return snapshot


def _meter_skipped(operation: str) -> None:
    """A request the meter could not price: logged (in full the first time), never raised."""
    if operation in _METER_FAILED:
        log.debug("DynamoDB meter: %s not metered", operation, exc_info=True)
        return
    _METER_FAILED.add(operation)
    log.warning("DynamoDB meter: %s not metered", operation, exc_info=True)


def _table_description(table: Any) -> dict[str, Any]:
    """What :func:`capacity.write_units` reads of a moto table."""
    return {
        "KeySchema": table.schema,
        "GlobalSecondaryIndexes": [
            {"IndexName": i.name, "KeySchema": i.schema, "Projection": i.projection} for i in table.global_indexes or []
        ],
        "LocalSecondaryIndexes": [
            {"IndexName": i.name, "KeySchema": i.schema, "Projection": i.projection} for i in table.indexes or []
        ],
    }


def _image(backend: Any, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """The stored item with this key (a copy in DynamoDB JSON), or None."""
    item = backend.get_item(table, key)
    image: dict[str, Any] | None = item.to_json()["Attributes"] if item else None
    return image


def _write_targets(operation: str, body: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, table, a dict holding the item's key) of every item a write request names; kind is
    ``write`` or ``check`` (a transaction's ConditionCheck)."""
    if operation == "put_item":
        return [("write", body["TableName"], body["Item"])]
    if operation in ("update_item", "delete_item"):
        return [("write", body["TableName"], body["Key"])]
    targets = []
    if operation == "batch_write_item":
        for table, requests in body["RequestItems"].items():
            for request in requests:
                if "PutRequest" in request:
                    targets.append(("write", table, request["PutRequest"]["Item"]))
                else:
                    targets.append(("write", table, request["DeleteRequest"]["Key"]))
        return targets
    for action in body["TransactItems"]:  # transact_write_items
        kind, op = next(iter(action.items()))
        targets.append(("check" if kind == "ConditionCheck" else "write", op["TableName"], op.get("Item") or op["Key"]))
    return targets


_Plan = list[tuple[str, str, str, dict[str, Any], dict[str, Any] | None]]


def _before_write(handler: Any, operation: str) -> _Plan | None:
    """(kind, table name as given, table's own name, key, item before) of each item written."""
    try:
        backend = handler.dynamodb_backend
        plan: _Plan = []
        for kind, name, key in _write_targets(operation, handler.body):
            plan.append((kind, name, backend.get_table(name).name, key, _image(backend, name, key)))
        return plan
    except Exception:
        _meter_skipped(operation)
        return None


def _after_write(handler: Any, operation: str, plan: _Plan | None, failed: bool) -> None:
    from . import capacity

    if plan is None:
        return
    transactional = operation == "transact_write_items"
    try:
        backend = handler.dynamodb_backend
        for kind, name, table_name, key, before in plan:
            description = _table_description(backend.get_table(name))
            # every index of the table, those this write left alone at 0
            index_wru = {i["IndexName"]: 0.0 for i in description["GlobalSecondaryIndexes"]}
            if failed or kind == "check":
                _charge(table_name, capacity.failed_write_units(before, transactional), index_wru=index_wru)
                continue
            wru, written = capacity.write_units(before, _image(backend, name, key), description, transactional)
            _charge(table_name, wru=wru, index_wru={**index_wru, **written})
    except Exception:
        _meter_skipped(operation)


def _metered_write(original: Any, operation: str, failures: tuple[type[BaseException], ...]) -> Any:
    def method(self: Any) -> Any:
        plan = _before_write(self, operation)
        try:
            result = original(self)
        except failures:  # a failed condition (or cancelled transaction) is billed too
            _after_write(self, operation, plan, failed=True)
            raise
        _after_write(self, operation, plan, failed=False)
        return result

    return method


def _charge_reads(handler: Any, operation: str) -> None:
    from . import capacity

    backend, body = handler.dynamodb_backend, handler.body
    if operation == "get_item":
        size = capacity.item_size(_image(backend, body["TableName"], body["Key"]))
        table = backend.get_table(body["TableName"]).name
        _charge(table, rru=capacity.read_units(size, bool(body.get("ConsistentRead"))))
    elif operation == "batch_get_item":
        for name, request in body["RequestItems"].items():
            consistent = bool(request.get("ConsistentRead"))
            units = sum(
                capacity.read_units(capacity.item_size(_image(backend, name, key)), consistent)
                for key in request["Keys"]
            )
            _charge(backend.get_table(name).name, rru=units)
    else:  # transact_get_items
        for action in body["TransactItems"]:
            get = action["Get"]
            size = capacity.item_size(_image(backend, get["TableName"], get["Key"]))
            _charge(backend.get_table(get["TableName"]).name, rru=capacity.read_units(size, transactional=True))


def _metered_read(original: Any, operation: str) -> Any:
    def method(self: Any) -> Any:
        result = original(self)
        try:
            _charge_reads(self, operation)
        except Exception:
            _meter_skipped(operation)
        return result

    return method


class _ReadProbe:
    """Stands in for a Query's or Scan's filter expression, which moto evaluates on every item
    the request read (index entries on an index), to add up their sizes; it filters as the
    expression does (no expression: keeps every item)."""

    def __init__(self, expression: Any) -> None:
        self.expression = expression
        self.size = 0

    def expr(self, item: Any) -> bool:
        try:
            from . import capacity

            self.size += capacity.item_size(item.to_json()["Attributes"])
        except Exception:
            _meter_skipped("query/scan item")
        return True if self.expression is None else bool(self.expression.expr(item))

    def __getattr__(self, name: str) -> Any:
        if name == "expression":
            raise AttributeError(name)
        return getattr(self.expression, name)


def _metered_search(original: Any, operation: str) -> Any:
    import inspect

    signature = inspect.signature(original)

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        from . import capacity

        try:
            bound = signature.bind(self, *args, **kwargs)
            probe = _ReadProbe(bound.arguments.get("filter_expression"))
            bound.arguments["filter_expression"] = probe
        except Exception:
            _meter_skipped(operation)
            return original(self, *args, **kwargs)
        result = original(*bound.args, **bound.kwargs)
        try:
            _charge(self.name, rru=capacity.read_units(probe.size, bool(bound.arguments.get("consistent_read"))))
        except Exception:
            _meter_skipped(operation)
        return result

    return method


def install_dynamodb_meter() -> None:
    """Meter every DynamoDB request served (:data:`DYNAMODB`) without changing any response.

    The handler's write and read operations are wrapped (they run under the lock that serves
    DynamoDB requests one at a time, :func:`shims._serialize_dynamodb`, so the item before and
    after a write are those of this request); Query and Scan at the table, where moto evaluates
    the items read. Idempotent; :func:`uninstall_dynamodb_meter` undoes it."""
    from moto.dynamodb.exceptions import ConditionalCheckFailed, TransactionCanceledException
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    if _METER_ORIGINALS:
        return
    failures = (ConditionalCheckFailed, TransactionCanceledException)
    for owner, name in [*((DynamoHandler, op) for op in (*_WRITES, *_READS)), (Table, "query"), (Table, "scan")]:
        original = owner.__dict__[name]
        _METER_ORIGINALS[(owner, name)] = original
        if owner is Table:
            setattr(owner, name, _metered_search(original, name))
        elif name in _WRITES:
            setattr(owner, name, _metered_write(original, name, failures))
        else:
            setattr(owner, name, _metered_read(original, name))


_WRITES = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")
_READS = ("get_item", "batch_get_item", "transact_get_items")


def uninstall_dynamodb_meter() -> None:
    for (owner, name), original in _METER_ORIGINALS.items():
        setattr(owner, name, original)
    _METER_ORIGINALS.clear()


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


def _count(environ: dict[str, Any]) -> None:
    """One AWS request served (both paths: Flask's and :func:`_direct`)."""
    op = _operation(environ)
    REQUESTS[op] = REQUESTS.get(op, 0) + 1


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
        reset = "reset" in environ.get("QUERY_STRING", "")
        body = json.dumps(
            {
                "requests": REQUESTS,
                "lambda": lambda_runtime.STATS,
                "lambdaErrors": lambda_runtime.ERRORS,
                "deliveriesPending": pending,
                "sesEventsPending": ses._PUBLISHER.pending,
                "iam": iam.stats(),
                "faults": faults.snapshot()["injected"],
                "dynamodb": _dynamodb_stats(reset),
                "logs": lambda_runtime.log_stats(reset),
                "lambdaWorkers": _workers_stats(),
            }
        ).encode()
        if reset:
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
            _count(environ)
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


def _workers_stats() -> dict[str, float]:
    """The Lambda worker processes: how many, their resident memory (peak of each, MB), the
    invocations they ran and those that found them all busy (run in threads)."""
    from . import lambda_runtime

    pool = lambda_runtime.WORKERS
    if pool is None:
        return {"size": 0, "running": 0, "rssMb": 0.0, "invocations": 0, "allBusy": 0}
    return {
        "size": pool.size,
        "running": pool.running,
        "rssMb": round(pool.rss_mb(), 1),
        "invocations": pool.served,
        "allBusy": pool.missed,
    }


def _make_server(port: int, region: str) -> Any:
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = FunctionUrls(DomainDispatcherApplication(create_backend_app), region)
    if os.environ.get("SESFLOW_LOCAL_IN_PROCESS_CALLS", "on") != "off":
        _serve_own_calls_in_process(app, f"http://127.0.0.1:{port}")
    return make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)


#: in-process and worker-forwarded calls go to moto's handler without Flask (:func:`_direct`);
#: False: through the whole WSGI app (A/B in bench, the differential test)
DIRECT_DISPATCH = True


def _direct(functions: FunctionUrls, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes] | None:
    """Serve an AWS request as moto's Flask app would, without Flask: the same backend app
    (``DomainDispatcherApplication.get_application``), the same URL rule, the same handler
    called as moto's ``convert_to_flask_response`` calls it, the same ``Response``. Flask's
    request context, signals, routing object and response finalising were about a quarter of
    the stack's CPU per DynamoDB request (py-spy, a micro-benchmark of in-process UpdateItems);
    nothing of it is AWS behaviour. None: not a plain moto handler (``/_sesflow/``,
    ``/moto-api``, no URL rule): the caller sends it through the WSGI app."""
    from botocore.exceptions import ClientError
    from moto.core.utils import convert_to_flask_response
    from moto.moto_api import recorder
    from werkzeug.exceptions import HTTPException

    if environ.get("PATH_INFO", "").startswith(("/_sesflow/", "/moto-api")):
        return None  # the stack's own endpoints, moto's API (its dashboard renders with Flask)
    backend_app = functions.app.get_application(environ)
    try:
        endpoint, _ = backend_app.url_map.bind_to_environ(environ).match()
    except HTTPException:
        return None  # no rule, or not this method: Flask answers it
    view = backend_app.view_functions.get(endpoint)
    if not isinstance(view, convert_to_flask_response):
        return None
    _count(environ)
    request = backend_app.request_class(environ)
    try:
        try:  # convert_to_flask_response.__call__ (moto/core/utils.py)
            recorder._record_request(request)
            result = view.callback(request, request.raw_url, dict(request.headers))
        except ClientError as exc:
            result = 400, {}, exc.response["Error"]["Message"]
        status, headers, content = result if len(result) == 3 else (200, {}, result)
        response = backend_app.response_class(response=content, status=status, headers=headers)
        if request.method == "HEAD" and "content-length" in headers:
            response.headers["Content-Length"] = headers["content-length"]
    except HTTPException as exc:  # as Flask answers one a handler raised
        response = exc.get_response(environ)
    # what the WSGI path hands back: no body for HEAD, 1xx, 204, 304, and their headers trimmed
    headers = dict(response.get_wsgi_headers(environ).items())
    return response.status_code, headers, b"".join(response.get_app_iter(environ))


def _answerer(app: Any, endpoint: str) -> Any:
    """``answer(method, url, headers, body) -> (status, headers, content)``: one AWS request
    to this process's endpoint served by the WSGI app on the calling thread (no socket, no
    HTTP parsing, no thread per request). Used for the calls made inside this process and
    for those the Lambda worker processes forward (:mod:`sesflow.local.lambda_workers`)."""
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    def answer(method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        builder = EnvironBuilder(
            base_url=endpoint,
            path=url[len(endpoint) :].split("?", 1)[0] or "/",
            query_string=url.split("?", 1)[1] if "?" in url else "",
            method=method,
            headers=headers,
            data=body or b"",
        )
        try:
            environ = builder.get_environ()
        finally:
            builder.close()
        if DIRECT_DISPATCH and isinstance(app, FunctionUrls):
            served = _direct(app, environ)
            if served is not None:
                return served
        app_iter, status, response_headers = run_wsgi_app(app, environ)
        try:
            content = b"".join(app_iter)
        finally:
            if hasattr(app_iter, "close"):
                app_iter.close()
        return int(status.split(" ", 1)[0]), dict(response_headers.items()), content

    return answer


def _sign_own_calls_without_signatures(endpoint: str) -> None:
    """SigV4 (``v4``) requests of this process to its own endpoint get the headers a signature
    gives (``X-Amz-Date``, the session token, ``Authorization`` with the credential scope: what
    the local IAM and the request counters read) and a zero signature: nothing here verifies
    signatures (moto does not), and computing them was about a tenth of the CPU of an
    in-process request. Any other URL is signed as botocore would."""
    from botocore import auth

    signer = auth.AUTH_TYPE_MAPS["v4"]
    if getattr(signer, "_sesflow_local", False):
        return

    class OwnCallsV4(signer):  # type: ignore[misc, valid-type]
        _sesflow_local = True

        def add_auth(self, request: Any) -> None:
            url: str = request.url
            if not (url.startswith(endpoint + "/") or url == endpoint):
                super().add_auth(request)
                return
            if self.credentials is None:
                raise auth.NoCredentialsError()
            sig = auth.SigV4Auth(self.credentials, self._service_name, self._region_name)
            request.context["timestamp"] = auth.get_current_datetime().strftime(auth.SIGV4_TIMESTAMP)
            sig._modify_request_before_signing(request)  # date, token, unsigned-payload headers
            request.headers["Authorization"] = (
                f"AWS4-HMAC-SHA256 Credential={sig.scope(request)}, SignedHeaders=host;x-amz-date, Signature={'0' * 64}"
            )

    auth.AUTH_TYPE_MAPS["v4"] = OwnCallsV4


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

    from .lambda_workers import RawResponse, request_parts

    answer = _answerer(app, endpoint)

    def before_send(request: Any, **kwargs: Any) -> Any:
        parts = request_parts(request, endpoint)
        if parts is None:
            return None  # not ours: the real network
        status, response_headers, content = answer(*parts)
        return AWSResponse(parts[1], status, response_headers, RawResponse(content))

    _sign_own_calls_without_signatures(endpoint)
    handlers.BUILTIN_HANDLERS.append(("before-send", before_send))  # every session made from now on
    import boto3

    if boto3.DEFAULT_SESSION is not None:  # and the default one, if it was made already
        boto3.DEFAULT_SESSION.events.register("before-send", before_send)


_LOCAL_DEFAULTS = {
    # seconds, not minutes, between throttled send rounds on a laptop
    "ThrottleWaitSeconds": "2",
    "QuotaWaitSeconds": "5",
    "LogRetentionDays": "1",
    # a line per step on a laptop (the deployed default is WARNING, see LogLevel)
    "LogLevel": "INFO",
    # the local interpreter runs no EXPRESS child executions in a Distributed Map
    "CampaignChildExecutionType": "STANDARD",
    "CampaignPauseCheckSeconds": "1",
    # lists over 16 KiB (a 1,000-row list) are planned in chunks: the distributed plan runs in
    # every local campaign of that size, as it runs in AWS for lists over 32 MiB
    "CampaignPlanChunkKiB": "16",
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
    install_dynamodb_meter()  # the request units DynamoDB would bill, for GET /_sesflow/stats
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
    _start_lambda_workers(server.app, doc["endpoint"])
    _collect_less_often()
    return server, doc


def _start_lambda_workers(app: Any, endpoint: str) -> None:
    """Lambda invocations run in worker processes from now on (:mod:`.lambda_workers`), as
    many as ``SESFLOW_LOCAL_LAMBDA_WORKERS`` (0: in threads of this process, as during deploy)."""
    from . import faults, lambda_runtime, lambda_workers

    size = int(os.environ.get("SESFLOW_LOCAL_LAMBDA_WORKERS", lambda_workers.DEFAULT_WORKERS))
    if size > 0:
        lambda_runtime.IN_PROCESS_ONLY = faults.lambda_rules_active
        lambda_runtime.WORKERS = lambda_workers.Pool(size, _answerer(app, endpoint))


#: the collector's thresholds while the stack runs (Python's default: 700, 10, 10)
GC_THRESHOLDS = (3_000, 10, 10)


def _collect_less_often() -> None:
    """The stack allocates fast (moto's expression trees, parsed requests and responses) and
    much of it is cyclic (an expression node points at its parent), so Python's collector runs
    its young generation every 700 allocations and, as survivors pile up, a full collection
    over the whole heap (moto's modules alone are ~180,000 objects, then the deployed stack).
    What deploying left is collected once and frozen (``gc.freeze``: never scanned again),
    and the young generation is collected every 3,000 allocations. Time in the collector while
    a 3,000-recipient campaign runs (``bench.campaign``, ``gc.callbacks``): 3.3 s with the
    defaults, 1.8 s with these; larger young generations cost more (20,000: 2.7 s, each
    collection traversing more survivors). Memory stays bounded: the cycles are still
    collected, in larger batches."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
    from . import lambda_runtime

    if lambda_runtime.WORKERS is not None:
        lambda_runtime.WORKERS.close()
    state_file.unlink(missing_ok=True)
    logging.info("sesflow local stack stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

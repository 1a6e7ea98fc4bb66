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


def _make_server(port: int) -> Any:
    from moto.moto_server.threaded_moto_server import MotoRequestHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    app = DomainDispatcherApplication(create_backend_app)
    return make_server("127.0.0.1", port, app, threaded=True, request_handler=MotoRequestHandler)


def local_parameters(port: int) -> dict[str, str]:
    """Template parameters of the local stack (everything else keeps its default)."""
    return {
        # one-click unsubscribe links point at the local endpoint
        "UnsubscribeUrl": f"http://127.0.0.1:{port}/_sesflow/unsubscribe",
        # seconds, not minutes, between throttled send rounds on a laptop
        "ThrottleWaitSeconds": "2",
        "QuotaWaitSeconds": "5",
        "LogRetentionDays": "1",
    }


def bring_up(root: Path, state: Path, port: int, max_send_rate: float | None,
             stack_name: str, region: str) -> tuple[Any, dict[str, Any]]:
    """Start the server and deploy; return (server, state document)."""
    started = time.perf_counter()
    os.environ.update({
        "MOTO_PORT": str(port),
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_DISABLED": "false",
    })
    os.environ.pop("AWS_PROFILE", None)
    from . import deploy, ses, shims

    shims.install()
    shims.set_project_root(root, deploy.ARTIFACTS_BUCKET)
    ses.configure(state / "outbox", max_send_rate)

    server = _make_server(port)
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
        server, doc = bring_up(args.root.resolve(), args.state_dir, args.port,
                               args.ses_max_send_rate, args.stack_name, args.region)
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

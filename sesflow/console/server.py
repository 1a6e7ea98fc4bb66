"""The console's web server: stdlib ``ThreadingHTTPServer`` on 127.0.0.1, Jinja2 pages (autoescaped).

No JavaScript: pages are rendered here (graphs and charts as SVG), actions are HTML forms that
POST with a CSRF token and ask for confirmation on a page of their own. Every response carries
a Content-Security-Policy; the email preview's forbids scripts and network and sandboxes the
document even when it is opened outside its iframe.
"""

from __future__ import annotations

import hmac
import re
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from sesflow.cli.output import UsageError
from sesflow.console import charts, data
from sesflow.target import Target

HERE = Path(__file__).parent
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
#: the preview of a message: its own CSS only, inline images only, no script, no network, sandboxed
PREVIEW_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"
STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
CAMPAIGN_ACTIONS = ("approve", "reject", "pause", "resume", "cancel")


class Console:
    """What every request needs: the target, the templates, the CSRF token, the outbox index."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.csrf = secrets.token_urlsafe(32)
        self.env = Environment(
            loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True), trim_blocks=True
        )
        self.env.globals.update(csrf=self.csrf, local=target.local, stack=target.stack_name, quote=_quote)
        folder = target.state.get("outbox") if target.local else None
        self.outbox = data.Outbox(Path(folder) if folder else None)

    def render(self, name: str, **context: Any) -> bytes:
        return self.env.get_template(name).render(**context).encode()


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


Route = Callable[["Handler", re.Match[str], dict[str, str]], None]
GET_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/"), "index"),
    (re.compile(r"/executions"), "executions"),
    (re.compile(r"/execution"), "execution"),
    (re.compile(r"/emails/(?P<id>[^/]+)"), "email"),
    (re.compile(r"/emails/(?P<id>[^/]+)/preview"), "preview"),
    (re.compile(r"/outbox"), "outbox"),
    (re.compile(r"/outbox/(?P<stem>[\w.@-]+)\.eml"), "raw"),
    (re.compile(r"/campaigns"), "campaigns"),
    (re.compile(r"/campaigns/(?P<id>[^/]+)"), "campaign"),
    (re.compile(r"/suppression"), "suppression"),
    (re.compile(r"/static/(?P<file>console\.css|favicon\.svg)"), "static"),
]
POST_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"/campaigns/(?P<id>[^/]+)/(?P<action>[a-z]+)"), "post_campaign"),
    (re.compile(r"/suppression/(?P<action>add|remove)"), "post_suppression"),
]


class Handler(BaseHTTPRequestHandler):
    server_version = "sesflow-console"
    console: Console  # set on the subclass made by serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no request log: URLs carry email ids and addresses

    # ------------------------------------------------------------ plumbing
    def _port(self) -> int:
        address: Any = self.server.server_address  # (host, port) for an AF_INET server
        return int(address[1])

    def _host_ok(self) -> bool:
        """Only this console's own origin (no DNS rebinding through another host name)."""
        host = self.headers.get("Host", "")
        port = self._port()
        return host in (f"127.0.0.1:{port}", f"localhost:{port}")

    def _send(self, status: int, body: bytes, ctype: str = "text/html; charset=utf-8", csp: str = PAGE_CSP) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Security-Policy", csp)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _page(self, name: str, status: int = 200, **context: Any) -> None:
        started = time.perf_counter()
        body = self.console.render(name, path=self.path, **context)
        self._send(status, body.replace(b"@@RENDER_MS@@", f"{(time.perf_counter() - started) * 1000:.0f}".encode()))

    def _error(self, status: int, message: str) -> None:
        self._page("error.html", status=status, title=HTTPStatus(status).phrase, status_code=status, message=message)

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _dispatch(self, routes: list[tuple[re.Pattern[str], str]], params: dict[str, str]) -> None:
        if not self._host_ok():
            self._send(HTTPStatus.MISDIRECTED_REQUEST, b"wrong host", "text/plain; charset=utf-8")
            return
        path = urllib.parse.urlsplit(self.path).path
        for pattern, name in routes:
            match = pattern.fullmatch(path)
            if match:
                try:
                    getattr(self, name)(match, params)
                except (UsageError, KeyError, LookupError) as exc:
                    self._error(HTTPStatus.NOT_FOUND, str(exc).strip("'\""))
                except Exception as exc:  # an AWS error: show it, keep serving
                    self._error(HTTPStatus.BAD_GATEWAY, f"{type(exc).__name__}: {exc}")
                return
        self._error(HTTPStatus.NOT_FOUND, "no such page")

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        self._dispatch(GET_ROUTES, {k: v[-1] for k, v in query.items()})

    def do_POST(self) -> None:
        length = min(int(self.headers.get("Content-Length") or 0), 64 * 1024)
        form = {k: v[-1] for k, v in urllib.parse.parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
        origin = self.headers.get("Origin")
        port = self._port()
        if origin not in (
            None,
            "null",
            f"http://127.0.0.1:{port}",
            f"http://localhost:{port}",
        ) or not hmac.compare_digest(form.get("csrf", ""), self.console.csrf):
            self._send(HTTPStatus.FORBIDDEN, b"bad or missing CSRF token", "text/plain; charset=utf-8")
            return
        self._dispatch(POST_ROUTES, form)

    # ------------------------------------------------------------ pages
    def index(self, match: re.Match[str], params: dict[str, str]) -> None:
        self._redirect("/executions")

    def static(self, match: re.Match[str], params: dict[str, str]) -> None:
        body = (HERE / "static" / match["file"]).read_bytes()
        self._send(200, body, "image/svg+xml" if match["file"].endswith(".svg") else "text/css; charset=utf-8")

    def executions(self, match: re.Match[str], params: dict[str, str]) -> None:
        machines = data.machines(self.console.target)
        machine = params.get("machine") or next(iter(machines))
        if machine not in machines:
            raise LookupError(f"no state machine {machine}")
        status = params.get("status") or None
        if status and status not in STATUSES:
            raise LookupError(f"no status {status}")
        page = data.list_executions(self.console.target, machine, status, params.get("token"), params.get("q", ""))
        self._page(
            "executions.html",
            title="Executions",
            page=page,
            machines=[(k, data.machine_label(k)) for k in machines],
            statuses=STATUSES,
        )

    def execution(self, match: re.Match[str], params: dict[str, str]) -> None:
        arn = params.get("arn", "")
        if not arn.startswith("arn:"):
            raise LookupError("no execution ARN given")
        ex = data.execution(self.console.target, arn)
        ex["graphs"] = [(title, Markup(svg)) for title, svg in ex["graphs"]]  # noqa: S704 - built with escape()
        self._page("execution.html", title=f"Execution {ex['name']}", ex=ex)

    def email(self, match: re.Match[str], params: dict[str, str]) -> None:
        email_id = urllib.parse.unquote(match["id"])
        view = data.email(self.console.target, email_id, self.console.outbox)
        if view is None:
            raise LookupError(f"no email {email_id}")
        self._page("email.html", title=f"Email {email_id}", email=view)

    def preview(self, match: re.Match[str], params: dict[str, str]) -> None:
        stems = self.console.outbox.stems_for(urllib.parse.unquote(match["id"]))
        if not stems:
            raise LookupError("no message")
        view = data.message_view(self.console.outbox.message(stems[-1]))
        if view["html"] is not None:
            body = view["html"].encode()
        else:
            body = self.console.render("text_preview.html", text=view["text"] or "")
        self._send(200, body, csp=PREVIEW_CSP)

    def outbox(self, match: re.Match[str], params: dict[str, str]) -> None:
        if not self.console.target.local:
            raise LookupError("the outbox is the local SES's; a deployed stack's SES keeps no copy of a message")
        offset = max(0, int(params.get("offset") or 0))
        rows, total = self.console.outbox.page(offset)
        self._page("outbox.html", title="Outbox", rows=rows, total=total, offset=offset, size=data.PAGE_SIZE)

    def raw(self, match: re.Match[str], params: dict[str, str]) -> None:
        self._send(200, self.console.outbox.raw(match["stem"]), "text/plain; charset=utf-8")

    def campaigns(self, match: re.Match[str], params: dict[str, str]) -> None:
        self._page("campaigns.html", title="Campaigns", rows=data.campaigns(self.console.target))

    def campaign(self, match: re.Match[str], params: dict[str, str]) -> None:
        campaign_id = urllib.parse.unquote(match["id"])
        view = data.campaign(self.console.target, campaign_id)
        p, gate = view["progress"], view["gate"]
        rate_svg = Markup(charts.send_rate(view["windows"], p.get("maxSendRate")))  # noqa: S704 - built with escape()
        gate_svg = Markup(  # noqa: S704 - built with escape()
            charts.gate_rates(p["stages"], gate.get("maxBounceRate"), gate.get("maxComplaintRate"))
        )
        self._page(
            "campaign.html",
            title=f"Campaign {campaign_id}",
            c=view,
            p=p,
            rate_svg=rate_svg,
            gate_svg=gate_svg,
            notice=params.get("done"),
        )

    def suppression(self, match: re.Match[str], params: dict[str, str]) -> None:
        from sesflow.cli import suppression as suppression_cli

        q = params.get("q", "").strip()
        rows = suppression_cli.entries(self.console.target)
        if q:
            rows = [r for r in rows if q.lower() in str(r["address"]).lower()]
        rows.sort(key=lambda r: str(r.get("lastSeen", "")), reverse=True)
        self._page(
            "suppression.html",
            title="Suppression list",
            rows=rows[:500],
            total=len(rows),
            q=q,
            notice=params.get("done"),
        )

    # ------------------------------------------------------------ actions (POST, CSRF checked)
    def _confirm(
        self, action: str, what: str, post: str, back: str, fields: dict[str, str], reason: bool, default: str = ""
    ) -> None:
        """The page that asks before an action: the same POST again with ``confirm=yes``."""
        self._page(
            "confirm.html",
            title=f"{action.title()} {what}?",
            action=action,
            what=what,
            post=post,
            back=back,
            fields=fields,
            reason=reason,
            default_reason=default,
        )

    def post_campaign(self, match: re.Match[str], form: dict[str, str]) -> None:
        campaign_id, action = urllib.parse.unquote(match["id"]), match["action"]
        if action not in CAMPAIGN_ACTIONS:
            raise LookupError(f"no action {action}")
        if form.get("confirm") != "yes":
            back = f"/campaigns/{_quote(campaign_id)}"
            self._confirm(action, f"campaign {campaign_id}", f"{back}/{action}", back, {}, action == "reject")
            return
        data.campaign_action(self.console.target, campaign_id, action, form.get("reason") or None)
        self._redirect(f"/campaigns/{_quote(campaign_id)}?done={action}")

    def post_suppression(self, match: re.Match[str], form: dict[str, str]) -> None:
        from sesflow_aws import suppression as store

        from sesflow.cli import suppression as suppression_cli

        action = match["action"]
        address = suppression_cli.normalized_address(form.get("address", ""))
        topic = form.get("topic") or "*"
        reason = form.get("reason") or f"{'added' if action == 'add' else 'removed'} in the console"
        if form.get("confirm") != "yes":
            fields = {"address": address, "topic": topic}
            self._confirm(
                action, f"{address} for {topic}", f"/suppression/{action}", "/suppression", fields, True, reason
            )
            return
        target = self.console.target
        if action == "add":
            store.add(
                target.clients.client("dynamodb"),
                target.outputs["SuppressionTableName"],
                address,
                topic,
                reason,
                "console",
            )
        else:
            suppression_cli.remove(target, address, topic, reason)
        self._redirect(f"/suppression?done={action}&q={_quote(address)}")


class Server(ThreadingHTTPServer):
    daemon_threads = True


def serve(target: Target, port: int = 0) -> tuple[Server, str]:
    """Start the console on 127.0.0.1 in a background thread; return the server and its URL."""
    handler = type("BoundHandler", (Handler,), {"console": Console(target)})
    server = Server(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, name="sesflow-console", daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"

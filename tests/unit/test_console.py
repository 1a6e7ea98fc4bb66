"""The console without a browser: the graph drawn from the ASL, the charts, the server's rules."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sesflow.console import charts, graph
from sesflow.console.server import PAGE_CSP, PREVIEW_CSP, serve
from sesflow.executions import StateRow
from sesflow.target import Clients, Target

ROOT = Path(__file__).resolve().parents[2]


def asl(name: str) -> dict[str, object]:
    definition: dict[str, object] = json.loads((ROOT / "statemachines" / f"{name}.asl.json").read_text())
    return definition


@pytest.mark.parametrize("name", ["send", "campaign", "sequence"])
def test_every_state_is_drawn_once_without_overlap(name: str) -> None:
    gs = graph.graphs(asl(name), name)
    states = {n for g in gs for n in g.nodes if n not in (graph.START, graph.END)}
    expected: set[str] = set()

    def collect(d: dict[str, object]) -> None:
        for n, s in d["States"].items():  # type: ignore[attr-defined]
            expected.add(n)
            inner = s.get("ItemProcessor") or s.get("Iterator")
            if inner:
                collect(inner)
            for b in s.get("Branches", []):
                collect(b)

    collect(asl(name))
    assert states == expected
    for g in gs:
        boxes, _, width, height = graph.layout(g)
        for a in boxes.values():
            assert 0 <= a.x and a.x + a.w <= width and 0 <= a.y and a.y + graph.NODE_H <= height
            for b in boxes.values():
                if a is not b and a.y == b.y:
                    assert a.x + a.w <= b.x or b.x + b.w <= a.x, (a.name, b.name)


def test_loops_are_drawn_as_back_edges() -> None:
    g = graph.build(asl("campaign"))
    back = graph._back_edges(g)
    assert ("WaitForWindow", "Ready") in back or ("NextStage", "SelectStage") in back
    layer = graph._layers(g, back)
    assert all(layer[e.dst] > layer[e.src] for e in g.edges if (e.src, e.dst) not in back and e.src != e.dst)


def row(name: str, status: str = "succeeded", attempts: int = 1) -> StateRow:
    return StateRow(name, "Task", status=status, attempts=attempts)


def test_the_path_taken_retries_and_the_failed_state() -> None:
    gs = graph.graphs(asl("send"))
    edges = graph.all_edges(gs)
    rows = [
        row("ValidateRequest"),
        row("IsRequestValid"),
        row("CheckSuppression"),
        row("IsSuppressed"),
        row("SendEmail", "caught", attempts=3),
        row("ExplainError"),
        row("ClassifyFailure"),
        row("Failed"),
        row("RecordStatus"),
        row("EmitStatus"),
    ]
    visits, taken = graph.visits_from_rows(rows, "SUCCEEDED", edges)
    assert visits["SendEmail"] == graph.Visit("caught", retries=2, entered=1)
    assert (graph.START, "ValidateRequest") in taken and ("SendEmail", "ExplainError") in taken
    assert ("EmitStatus", graph.END) in taken and ("SendEmail", "RecordSent") not in taken
    svg = graph.svg(gs[0], visits, taken)
    assert 'data-state="SendEmail"><title>SendEmail (Task): caught, 2 retries' in svg.replace(
        'class="state visited caught" ', ""
    )
    assert 'data-retries="2"' in svg


def test_a_state_where_a_failed_execution_stopped_is_marked_failed() -> None:
    visits, _ = graph.visits_from_rows([row("Unrecorded"), row("StatusNotRecorded", "running")], "FAILED", set())
    assert visits["StatusNotRecorded"].status == "failed"


def test_names_are_escaped_in_the_svg() -> None:
    g = graph.build({"StartAt": "<script>", "States": {"<script>": {"Type": "Succeed"}}})
    svg = graph.svg(g)
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_charts_draw_rates_against_limits() -> None:
    svg = charts.send_rate([(0, 100.0, 110.0, 9.5), (1, 120.0, 150.0, 10.0)], 10.0)
    assert svg.count('class="rate"') == 2 and 'class="limit"' in svg
    far = charts.send_rate([(0, 100.0, 110.0, 9.5)], 1000.0)
    assert 'class="limit"' not in far and "far above" in far
    gate = charts.gate_rates([{"stage": 0, "sent": 100, "bounced": 6, "complained": 0}], 0.05, 0.001)
    assert "bounce rate 6.00%" in gate and 'class="threshold bounce"' in gate
    assert "nothing sent yet" in charts.send_rate([], 10.0)


# ---------------------------------------------------------------- the server's rules
@pytest.fixture
def console() -> Iterator[str]:
    target = Target(Clients("us-east-1", "http://127.0.0.1:9"), "s", {}, {}, local=True)
    server, url = serve(target, 0)
    yield url.rstrip("/")
    server.shutdown()
    server.server_close()


def test_it_binds_to_loopback_and_sets_a_strict_csp(console: str) -> None:
    assert console.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(console + "/static/console.css", timeout=10) as resp:
        assert resp.headers["Content-Security-Policy"] == PAGE_CSP
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src" not in PAGE_CSP and "default-src 'none'" in PAGE_CSP  # no script at all
    assert PREVIEW_CSP.startswith("sandbox;") and "script" not in PREVIEW_CSP and "img-src data:" in PREVIEW_CSP


def test_unknown_pages_are_404_and_foreign_hosts_421(console: str) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(console + "/nope", timeout=10)
    assert err.value.code == 404
    req = urllib.request.Request(console + "/static/console.css", headers={"Host": "attacker.example:80"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 421


def test_posts_need_the_csrf_token_and_our_origin(console: str) -> None:
    for headers, body in (({}, b"action=pause&confirm=yes"), ({"Origin": "https://evil.example"}, b"csrf=x")):
        req = urllib.request.Request(console + "/campaigns/c1/pause", data=body, method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 403

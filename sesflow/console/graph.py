"""A state machine's graph as SVG, drawn on the server from its ASL, with one execution's path.

Why server-side SVG rather than a layout library in the browser: the machines are small
(tens of states), a layered layout of that size is a page of code, and drawing it here
means the console ships no JavaScript at all (nothing to bundle, licence or keep up to
date, works offline, and a page's graph can be tested without a browser).

The layout is the usual layered one (Sugiyama, simplified): cycles are broken by a depth-
first search from ``StartAt`` (the edges that close a loop are drawn back up on the right),
each state goes on the layer of its longest path from the start, states are ordered in
their layer by a few barycentre sweeps, and each layer is centred. Map and Parallel states
are drawn as one box; their inner states get a graph of their own below (``graphs``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape
from typing import Any

#: the drawing's own start and end nodes: keys no ASL state can clash with (a machine may well
#: have a state named "Start"), shown as "Start" and "End", "(start)"/"(end)" in data attributes
START, END = "\u2063start", "\u2063end"
LABELS = {START: "Start", END: "End"}
NODE_H, LAYER_GAP, NODE_GAP, CHAR_W, PAD = 34, 62, 28, 7.2, 18


@dataclass(frozen=True)
class Visit:
    """What one execution did in one state (folded from its history)."""

    status: str  # succeeded | failed | caught | running
    retries: int = 0
    entered: int = 0  # how many times the state was entered


@dataclass
class Edge:
    src: str
    dst: str
    kind: str  # next | choice | default | catch


@dataclass
class Graph:
    title: str
    nodes: dict[str, str]  # name -> ASL type (Start/End are "Start"/"End")
    edges: list[Edge]
    children: list[Graph] = field(default_factory=list)


def _edges(name: str, state: dict[str, Any]) -> list[Edge]:
    out: list[Edge] = []
    if state.get("Next"):
        out.append(Edge(name, state["Next"], "next"))
    if state.get("End") or state.get("Type") in ("Succeed", "Fail"):
        out.append(Edge(name, END, "end"))
    for choice in state.get("Choices", []):
        out.append(Edge(name, choice["Next"], "choice"))
    if state.get("Default"):
        out.append(Edge(name, state["Default"], "default"))
    for catch in state.get("Catch", []):
        out.append(Edge(name, catch["Next"], "catch"))
    return out


def build(definition: dict[str, Any], title: str = "") -> Graph:
    """The graph of one ASL scope (and of its Map/Parallel scopes, as ``children``)."""
    states: dict[str, dict[str, Any]] = definition.get("States", {})
    nodes = {START: "Start", **{name: str(s.get("Type", "?")) for name, s in states.items()}, END: "End"}
    edges = [Edge(START, definition["StartAt"], "next")]
    seen: set[tuple[str, str]] = set()
    children: list[Graph] = []
    for name, state in states.items():
        for edge in _edges(name, state):
            if (edge.src, edge.dst) not in seen and edge.dst in nodes:
                seen.add((edge.src, edge.dst))
                edges.append(edge)
        inner = state.get("ItemProcessor") or state.get("Iterator")
        if inner:
            children.append(build(inner, f"{name}: each item"))
        for i, branch in enumerate(state.get("Branches", [])):
            children.append(build(branch, f"{name}: branch {i + 1}"))
    return Graph(title, nodes, edges, children)


def graphs(definition: dict[str, Any], title: str = "") -> list[Graph]:
    """The machine's graph first, then every inner scope's, depth first."""
    out: list[Graph] = []

    def walk(g: Graph) -> None:
        out.append(g)
        for child in g.children:
            walk(child)

    walk(build(definition, title))
    return out


# ---------------------------------------------------------------- layout
def _back_edges(g: Graph) -> set[tuple[str, str]]:
    """Edges that close a cycle, found by an iterative depth-first search from Start."""
    succ: dict[str, list[str]] = {n: [] for n in g.nodes}
    for e in g.edges:
        succ[e.src].append(e.dst)
    colour: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    roots = [START, *[n for n in g.nodes if n != START]]
    for root in roots:
        if root in colour:
            continue
        colour[root] = 1
        stack: list[tuple[str, Iterable[str]]] = [(root, iter(succ[root]))]
        while stack:
            node, it = stack[-1]
            nxt = next(iter(it), None)
            if nxt is None:
                colour[node] = 2
                stack.pop()
            elif colour.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in colour:
                colour[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    return back


def _layers(g: Graph, back: set[tuple[str, str]]) -> dict[str, int]:
    forward = [(e.src, e.dst) for e in g.edges if (e.src, e.dst) not in back and e.src != e.dst]
    layer = dict.fromkeys(g.nodes, 0)
    for _ in range(len(g.nodes)):  # longest path by relaxation (a DAG: at most |V| rounds)
        changed = False
        for src, dst in forward:
            if layer[dst] < layer[src] + 1:
                layer[dst] = layer[src] + 1
                changed = True
        if not changed:
            break
    last = max((v for k, v in layer.items() if k != END), default=0)
    layer[END] = max(layer[END], last + 1)
    return layer


@dataclass
class Box:
    name: str
    kind: str
    x: float
    y: float
    w: float


def layout(g: Graph) -> tuple[dict[str, Box], set[tuple[str, str]], float, float]:
    """Boxes for every node, the back edges, and the drawing's width and height."""
    back = _back_edges(g)
    layer = _layers(g, back)
    rows: dict[int, list[str]] = {}
    for name in g.nodes:  # ASL order within a layer to start with
        rows.setdefault(layer[name], []).append(name)
    preds: dict[str, list[str]] = {n: [] for n in g.nodes}
    succs: dict[str, list[str]] = {n: [] for n in g.nodes}
    for e in g.edges:
        if (e.src, e.dst) not in back:
            preds[e.dst].append(e.src)
            succs[e.src].append(e.dst)
    order = sorted(rows)
    for sweep in range(4):  # barycentre ordering: down, up, down, up
        neighbours = preds if sweep % 2 == 0 else succs
        for idx in order if sweep % 2 == 0 else reversed(order):
            adjacent = idx - 1 if sweep % 2 == 0 else idx + 1
            pos = {n: i for i, n in enumerate(rows.get(adjacent, []))}
            current = {n: i for i, n in enumerate(rows[idx])}

            def key(
                n: str,
                pos: dict[str, int] = pos,
                current: dict[str, int] = current,
                nb: dict[str, list[str]] = neighbours,
            ) -> float:
                ps = [pos[p] for p in nb[n] if p in pos]
                return sum(ps) / len(ps) if ps else float(current[n])

            rows[idx].sort(key=key)
    widths = {n: max(70.0, len(LABELS.get(n, n)) * CHAR_W + 2 * PAD) for n in g.nodes}
    row_w = {i: sum(widths[n] for n in names) + NODE_GAP * (len(names) - 1) for i, names in rows.items()}
    total_w = max(row_w.values(), default=0) + 2 * PAD + 80  # room on the right for back edges
    boxes: dict[str, Box] = {}
    for i, names in rows.items():
        x = PAD + (total_w - 80 - 2 * PAD - row_w[i]) / 2
        for n in names:
            boxes[n] = Box(n, g.nodes[n], x, PAD + i * (NODE_H + LAYER_GAP), widths[n])
            x += widths[n] + NODE_GAP
    height = PAD * 2 + (max(rows, default=0) + 1) * (NODE_H + LAYER_GAP) - LAYER_GAP
    return boxes, back, total_w, height


# ---------------------------------------------------------------- drawing
def _edge_path(a: Box, b: Box, is_back: bool, width: float) -> str:
    if is_back:  # out of the right side, up along the margin, into the target's right side
        x1, y1 = a.x + a.w, a.y + NODE_H / 2
        x2, y2 = b.x + b.w, b.y + NODE_H / 2
        lane = width - 30
        return f"M{x1:.1f},{y1:.1f} C{lane:.1f},{y1:.1f} {lane:.1f},{y2:.1f} {x2 + 6:.1f},{y2:.1f}"
    x1, y1 = a.x + a.w / 2, a.y + NODE_H
    x2, y2 = b.x + b.w / 2, b.y - 6
    mid = (y1 + y2) / 2
    return f"M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"


def _attr(name: str) -> str:
    return {START: "(start)", END: "(end)"}.get(name, name)


def svg(g: Graph, visits: dict[str, Visit] | None = None, taken: set[tuple[str, str]] | None = None) -> str:
    """The graph as an inline ``<svg>``; states and edges carry classes (``visited``, ``failed``,
    ``caught``, ``running``, ``taken``) and ``data-state`` names, retries a badge."""
    visits = visits or {}
    taken = taken or set()
    boxes, back, width, height = layout(g)
    label = escape(g.title or "state machine")
    parts = [
        f'<svg class="graph" role="img" aria-label="{label} graph" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" height="{height:.0f}" xmlns="http://www.w3.org/2000/svg">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="8" refY="5" markerWidth="9" markerHeight="9" '
        'markerUnits="userSpaceOnUse" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead"/></marker></defs>',
    ]
    for e in g.edges:
        a, b = boxes[e.src], boxes[e.dst]
        cls = f"edge {e.kind}" + (" taken" if (e.src, e.dst) in taken else "")
        path = _edge_path(a, b, (e.src, e.dst) in back or e.src == e.dst, width)
        parts.append(
            f'<path class="{cls}" data-from="{escape(_attr(e.src))}" data-to="{escape(_attr(e.dst))}" d="{path}" '
            'marker-end="url(#arrow)"/>'
        )
    for name, box in boxes.items():
        v = visits.get(name)
        terminal = name in (START, END)
        cls = "terminal" if terminal else "state"
        if v is not None:
            cls += f" visited {v.status}"
        elif (name == START and visits) or (name == END and any(dst == END for _, dst in taken)):
            cls += " visited succeeded"
        state_attr = "" if terminal else f' data-state="{escape(name)}"'
        label = LABELS.get(name, name)
        tip = f"{label} ({box.kind})"
        if v is not None:
            tip += f": {v.status}" + (f", {v.retries} retr{'y' if v.retries == 1 else 'ies'}" if v.retries else "")
            tip += f", entered {v.entered}x" if v.entered > 1 else ""
        rx = NODE_H / 2 if terminal else 6
        parts.append(
            f'<g class="{cls}"{state_attr}><title>{escape(tip)}</title>'
            f'<rect x="{box.x:.1f}" y="{box.y:.1f}" width="{box.w:.1f}" height="{NODE_H}" rx="{rx:.0f}"/>'
            f'<text x="{box.x + box.w / 2:.1f}" y="{box.y + NODE_H / 2 + 4:.1f}">{escape(label)}</text>'
        )
        if v is not None and v.retries:
            cx, cy = box.x + box.w - 2, box.y + 2
            parts.append(
                f'<g class="retries" data-retries="{v.retries}"><circle cx="{cx:.1f}" cy="{cy:.1f}" r="10"/>'
                f'<text x="{cx:.1f}" y="{cy + 4:.1f}">{v.retries}</text></g>'
            )
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def all_edges(gs: Iterable[Graph]) -> set[tuple[str, str]]:
    return {(e.src, e.dst) for g in gs for e in g.edges}


def visits_from_rows(
    rows: Iterable[Any], execution_status: str, edges: set[tuple[str, str]]
) -> tuple[dict[str, Visit], set[tuple[str, str]]]:
    """Per state, what the execution did there; and the transitions it took.

    ``rows``: :class:`sesflow.executions.StateRow`\\ s in history order; ``edges``: every edge of
    the machine's graphs (:func:`all_edges`). A state's incoming transition is from the latest
    state before it with an edge to it (a Map's inner states come between the Map and the state
    after it); ``Start`` leads to a scope's first state; the last state leads to ``End`` when the
    execution succeeded."""
    visits: dict[str, Visit] = {}
    taken: set[tuple[str, str]] = set()
    names: list[str] = []
    for row in rows:
        old = visits.get(row.name)
        status = row.status
        if status == "running" and execution_status in ("FAILED", "TIMED_OUT", "ABORTED"):
            status = "failed"  # where it stopped (a Fail state is entered, never exited)
        if old is not None and old.status in ("failed", "caught") and status == "succeeded":
            status = old.status  # a failure in an earlier visit stays visible
        visits[row.name] = Visit(status, (old.retries if old else 0) + row.retries, (old.entered if old else 0) + 1)
        source = next((p for p in reversed(names) if (p, row.name) in edges), None)
        if source is None and (START, row.name) in edges:
            source = START
        if source is not None:
            taken.add((source, row.name))
        names.append(row.name)
    if names and execution_status == "SUCCEEDED" and (names[-1], END) in edges:
        taken.add((names[-1], END))
    return visits, taken

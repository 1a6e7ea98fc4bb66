"""Two small charts as server-side SVG (no chart library: a few bars and lines, see graph.py)."""

from __future__ import annotations

from html import escape

W, H, L, B, T = 560, 180, 48, 28, 12  # size, left/bottom/top margins


def _frame(label: str, y_max: float, y_fmt: str) -> list[str]:
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(label)}" viewBox="0 0 {W} {H}" width="{W}" height="{H}" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<line class="axis" x1="{L}" y1="{H - B}" x2="{W - 8}" y2="{H - B}"/>',
        f'<line class="axis" x1="{L}" y1="{T}" x2="{L}" y2="{H - B}"/>',
    ]
    for frac in (0, 0.5, 1):
        y = H - B - frac * (H - B - T)
        parts.append(
            f'<text class="tick" x="{L - 4}" y="{y + 4:.1f}" text-anchor="end">{y_fmt.format(frac * y_max)}</text>'
        )
    return parts


def send_rate(windows: list[tuple[int, float, float, float]], limit: float | None) -> str:
    """Each stage's measured send rate over its sending window (emails/s) against ``limit``."""
    label = "send rate over time against the limit"
    if not windows:
        return f'<p class="empty">{escape(label)}: nothing sent yet</p>'
    t0 = min(w[1] for w in windows)
    t1 = max(w[2] for w in windows)
    span = max(t1 - t0, 1.0)
    top = max(w[3] for w in windows)
    # the limit is drawn when it is within reach; far above the rates it would flatten them
    shown_limit = limit if limit and limit <= 3 * top else None
    y_max = max(top, shown_limit or 0) * 1.15 or 1.0
    parts = _frame(label, y_max, "{:.1f}/s" if y_max < 10 else "{:.0f}/s")

    def x(t: float) -> float:
        return L + (t - t0) / span * (W - L - 16)

    def y(v: float) -> float:
        return H - B - v / y_max * (H - B - T)

    if limit and not shown_limit:
        parts.append(
            f'<text class="limit-label" x="{W - 10}" y="{T + 10}" text-anchor="end">'
            f"limit {limit:g}/s (far above)</text>"
        )
    if shown_limit:
        limit = shown_limit
        parts.append(f'<line class="limit" x1="{L}" y1="{y(limit):.1f}" x2="{W - 8}" y2="{y(limit):.1f}"/>')
        parts.append(
            f'<text class="limit-label" x="{W - 10}" y="{y(limit) - 4:.1f}" text-anchor="end">limit {limit:g}/s</text>'
        )
    for stage, start, end, rate in windows:
        x1, x2 = x(start), max(x(end), x(start) + 3)
        parts.append(
            f'<rect class="rate" x="{x1:.1f}" y="{y(rate):.1f}" width="{x2 - x1:.1f}" height="{H - B - y(rate):.1f}">'
            f"<title>stage {stage}: {rate:g}/s for {end - start:.1f} s</title></rect>"
        )
        parts.append(f'<text class="tick" x="{(x1 + x2) / 2:.1f}" y="{H - B + 14}" text-anchor="middle">{stage}</text>')
    parts.append(f'<text class="tick" x="{W - 8}" y="{H - 4}" text-anchor="end">{span:.0f} s</text></svg>')
    return "".join(parts)


def gate_rates(stages: list[dict[str, float]], max_bounce: float | None, max_complaint: float | None) -> str:
    """Per stage, the bounce and complaint rates (of emails sent) against the gate's thresholds."""
    label = "bounce and complaint rates against the gate"
    if not stages:
        return f'<p class="empty">{escape(label)}: no stage yet</p>'
    rates = []
    for s in stages:
        sent = s.get("sent") or 0
        rates.append(
            (
                int(s["stage"]),
                s.get("bounced", 0) / sent if sent else 0.0,
                s.get("complained", 0) / sent if sent else 0.0,
            )
        )
    y_max = max([r for _, b, c in rates for r in (b, c)] + [max_bounce or 0, max_complaint or 0]) * 1.2 or 0.01
    parts = _frame(label, y_max * 100, "{:.1f}%")
    slot = (W - L - 16) / len(rates)

    def y(v: float) -> float:
        return H - B - v / y_max * (H - B - T)

    for i, (stage, bounce, complaint) in enumerate(rates):
        x0 = L + i * slot + slot * 0.2
        bw = slot * 0.3
        for j, (cls, value) in enumerate((("bounce", bounce), ("complaint", complaint))):
            parts.append(
                f'<rect class="{cls}" x="{x0 + j * bw:.1f}" y="{y(value):.1f}" width="{bw:.1f}" '
                f'height="{H - B - y(value):.1f}"><title>stage {stage}: {cls} rate {value:.2%}</title></rect>'
            )
        parts.append(f'<text class="tick" x="{x0 + bw:.1f}" y="{H - B + 14}" text-anchor="middle">{stage}</text>')
    for cls, limit in (("bounce", max_bounce), ("complaint", max_complaint)):
        if limit:
            parts.append(
                f'<line class="threshold {cls}" x1="{L}" y1="{y(limit):.1f}" x2="{W - 8}" y2="{y(limit):.1f}">'
                f"<title>gate: {cls} rate above {limit:.2%} halts</title></line>"
            )
    parts.append("</svg>")
    return "".join(parts)

"""A/B winner selection (plain Python): the rates of each variant's sample and the rule.

The rule, as the report states it:

- every variant needs ``minSample`` emails accepted by SES; otherwise the **default variant**
  (the first one) wins, "insufficient sample";
- ``open`` / ``click``: the highest unique open / click rate (opened or clicked / sent) wins;
  ``lowest_complaint``: the lowest complaint rate;
- equal rates: the variant listed first among them wins (the default when it is one of them);
- ``open`` / ``click`` with no open or click recorded at all (tracking off, or nobody
  engaged): the default variant, "no engagement recorded".

The decision keeps every variant's numbers and a two-proportion z score of the winner against
the runner-up, so a reader can tell a clear win from noise (it does not change the pick).
"""

from __future__ import annotations

import math
from typing import Any

RATE_OF = {"open": "opened", "click": "clicked", "lowest_complaint": "complained"}


def rates(counters: dict[str, dict[str, Any]], ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per variant: sent, delivered, opened, clicked, bounced, complained and their rates."""
    out: dict[str, dict[str, Any]] = {}
    for vid in ids:
        c = counters.get(vid) or {}
        sent = int(c.get("accepted", 0))
        row: dict[str, Any] = {"sent": sent}
        for name in ("delivered", "opened", "clicked", "bounced", "complained"):
            row[name] = int(c.get(name, 0))
            row[f"{name}Rate"] = round(row[name] / sent, 6) if sent else 0.0
        out[vid] = row
    return out


def _z(a: dict[str, Any], b: dict[str, Any], field: str) -> float | None:
    n1, n2 = a["sent"], b["sent"]
    if not n1 or not n2:
        return None
    p1, p2 = a[field] / n1, b[field] / n2
    pooled = (a[field] + b[field]) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return round((p1 - p2) / spread, 3) if spread else None


def choose(counters: dict[str, dict[str, Any]], ids: list[str], metric: str, min_sample: int) -> dict[str, Any]:
    """The winner, the reason and the numbers it was decided on."""
    table = rates(counters, ids)
    default = ids[0]
    decision: dict[str, Any] = {"metric": metric, "minSample": min_sample, "variants": table}
    short = [v for v in ids if table[v]["sent"] < min_sample]
    if short:
        return {
            **decision,
            "winner": default,
            "reason": f"insufficient sample: {', '.join(short)} sent fewer than {min_sample}; "
            f"the default variant {default} goes to the rest",
        }
    field = RATE_OF[metric]
    if metric != "lowest_complaint" and not any(table[v][field] for v in ids):
        return {
            **decision,
            "winner": default,
            "reason": f"no {field} recorded for any variant (is EngagementTracking on?); the default variant {default}",
        }
    key = f"{field}Rate"
    sign = -1 if metric == "lowest_complaint" else 1
    best = max(sign * table[v][key] for v in ids)
    tied = [v for v in ids if sign * table[v][key] == best]
    winner = tied[0]
    ranked = sorted(ids, key=lambda v: (-sign * table[v][key], ids.index(v)))
    runner_up = ranked[1]
    how = "lowest" if sign < 0 else "highest"
    reason = f"{how} {field} rate: {winner} {table[winner][key]:.2%} vs {runner_up} {table[runner_up][key]:.2%}"
    if len(tied) > 1:
        reason += f" (a tie among {', '.join(tied)}: the first listed wins)"
    return {**decision, "winner": winner, "reason": reason, "z": _z(table[winner], table[runner_up], field)}

"""Events sesflow announces on the project's bus (``source: sesflow``)."""

from __future__ import annotations

import json
from typing import Any

SOURCE = "sesflow"


def put(events: Any, bus: str, detail_type: str, detail: dict[str, Any]) -> None:
    events.put_events(
        Entries=[
            {
                "EventBusName": bus,
                "Source": SOURCE,
                "DetailType": detail_type,
                "Detail": json.dumps(detail, default=str),
            }
        ]
    )

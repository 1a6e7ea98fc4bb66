"""SequenceFunction: the sequence machine's steps (``mode``: start, step) for one enrollment
of a drip sequence (``sesflow_aws.sequences``)."""

from __future__ import annotations

from typing import Any

from sesflow_aws.sequences import Runner

from ._common import Settings, client, logger, throttling_as_aws_throttled


@logger.inject_lambda_context(log_event=False)
@throttling_as_aws_throttled
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    runner = Runner(client, Settings.from_env())
    mode = event.get("mode")
    if mode == "start":
        return runner.start(event)
    if mode == "step":
        return runner.step(event)
    if mode == "fail":
        return runner.fail(event)
    raise ValueError(f"unknown mode {mode!r}")

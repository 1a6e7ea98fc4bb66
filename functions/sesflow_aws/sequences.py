"""Drip sequences on AWS: versioned definitions, enrollments, and the steps the sequence
machine runs (``SequenceFunction``).

``SequencesTable`` (key ``sequence`` + ``key``) holds, per sequence:

- ``def#latest`` (``version``: the number of the newest definition) and ``def#v000003``
  (``definition``: JSON, immutable once written); an enrollment keeps the version it started
  with, whatever is deployed later;
- ``enr#<enrollment key>``: ``status`` (active, completed, exited), the current ``step``, the
  ``history`` of steps, the ``recipient``, the ``enrollmentId``, the ``executionArn``.

Sends go through the send machine (validation, suppression, templates, ledger, status events):
a step starts one execution whose emailId is derived from (enrollment, step), so a retried step
sends nothing twice (the send ledger). Every function takes the boto3 clients it needs.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sesflow_core import sequence as sq
from sesflow_core.clock import Clock, ClockError, now_iso

from . import dynamo, events, suppression

DEF_LATEST = "def#latest"

_definitions: dict[tuple[str, str, int], sq.Sequence] = {}  # (table, name, version): immutable


def def_key(version: int) -> str:
    return f"def#v{version:06d}"


def enrollment_item_key(name: str, key: str) -> dict[str, Any]:
    return {"sequence": {"S": name}, "key": {"S": f"enr#{key}"}}


# ---------------------------------------------------------------- definitions
def missing_templates(s3: Any, bucket: str, seq: sq.Sequence) -> list[str]:
    """Templates a sequence sends that the templates bucket does not have."""
    missing = []
    for name in seq.templates():
        try:
            s3.head_object(Bucket=bucket, Key=f"{name}/metadata.json")
        except s3.exceptions.ClientError:
            missing.append(name)
    return missing


def deploy(ddb: Any, s3: Any, table: str, templates_bucket: str, raw: dict[str, Any]) -> dict[str, Any]:
    """Validate and store a new version; :class:`sq.InvalidSequence` says what is wrong."""
    seq = sq.Sequence.parse(raw)
    missing = missing_templates(s3, templates_bucket, seq)
    if missing:
        raise sq.InvalidSequence(f"template(s) not in the templates bucket: {', '.join(missing)}")
    version = int(
        ddb.update_item(
            TableName=table,
            Key={"sequence": {"S": seq.name}, "key": {"S": DEF_LATEST}},
            UpdateExpression="ADD version :one SET updatedAt = :now",
            ExpressionAttributeValues={":one": {"N": "1"}, ":now": {"S": now_iso()}},
            ReturnValues="UPDATED_NEW",
        )["Attributes"]["version"]["N"]
    )
    ddb.put_item(
        TableName=table,
        Item={
            "sequence": {"S": seq.name},
            "key": {"S": def_key(version)},
            "version": {"N": str(version)},
            "definition": {"S": json.dumps(seq.as_dict(), separators=(",", ":"))},
            "deployedAt": {"S": now_iso()},
        },
        ConditionExpression="attribute_not_exists(#k)",
        ExpressionAttributeNames={"#k": "key"},
    )
    return {"sequence": seq.name, "version": version, "steps": len(seq.steps), "templates": seq.templates()}


def latest_version(ddb: Any, table: str, name: str) -> int | None:
    item = ddb.get_item(
        TableName=table, Key={"sequence": {"S": name}, "key": {"S": DEF_LATEST}}, ConsistentRead=True
    ).get("Item")
    return int(item["version"]["N"]) if item else None


def definition(ddb: Any, table: str, name: str, version: int) -> sq.Sequence:
    cache_key = (table, name, version)
    if cache_key not in _definitions:
        item = ddb.get_item(
            TableName=table, Key={"sequence": {"S": name}, "key": {"S": def_key(version)}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            raise sq.InvalidSequence(f"sequence {name} has no version {version}")
        _definitions[cache_key] = sq.Sequence.parse(json.loads(item["definition"]["S"]))
    return _definitions[cache_key]


# ---------------------------------------------------------------- enrollments
def enrollment_input(
    ddb: Any,
    table: str,
    name: str,
    to: str,
    data: dict[str, Any] | None = None,
    enrollment_id: str = "default",
    clock: dict[str, Any] | None = None,
    timezone: str | None = None,
) -> dict[str, Any]:
    """The sequence machine's input for one enrollment (the latest version, pinned)."""
    version = latest_version(ddb, table, name)
    if version is None:
        raise sq.InvalidSequence(f"no sequence {name!r}: deploy it first (sesflow sequence deploy)")
    if not isinstance(enrollment_id, str) or not 1 <= len(enrollment_id) <= 64:
        raise sq.InvalidSequence("enrollmentId must be 1-64 characters")
    if timezone:
        sq.zone(timezone, "timezone")
    out: dict[str, Any] = {
        "sequence": name,
        "version": version,
        "key": sq.enrollment_key(name, to, enrollment_id),
        "enrollmentId": enrollment_id,
        "to": to,
        "data": data or {},
    }
    if clock:
        out["clock"] = clock
    if timezone:
        out["timezone"] = timezone
    return out


def enrollment(ddb: Any, table: str, name: str, key: str) -> dict[str, Any] | None:
    item = ddb.get_item(TableName=table, Key=enrollment_item_key(name, key), ConsistentRead=True).get("Item")
    return dynamo.to_plain(item) if item else None


def _history(ddb: Any, table: str, name: str, key: str, entry: dict[str, Any], **fields: Any) -> None:
    """Append ``entry`` to the enrollment's history and set ``fields`` (the current step...)."""
    names = {f"#f{i}": k for i, k in enumerate(fields)}
    values = dynamo.to_item({f":f{i}": v for i, v in enumerate(fields.values())})
    sets = [f"#f{i} = :f{i}" for i in range(len(fields))]
    sets += ["history = list_append(if_not_exists(history, :empty), :entry)", "updatedAt = :now"]
    ddb.update_item(
        TableName=table,
        Key=enrollment_item_key(name, key),
        UpdateExpression="SET " + ", ".join(sets),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={
            **values,
            ":empty": {"L": []},
            ":entry": {"L": [dynamo.to_value({**entry, "at": now_iso()})]},
            ":now": {"S": now_iso()},
        },
    )


class Runner:
    """The sequence machine's steps, with the clients and names they use."""

    def __init__(self, client: Any, settings: Any) -> None:
        self.client, self.settings = client, settings
        self.ddb = client("dynamodb")
        self.table = settings.sequences_table

    def emit(self, detail_type: str, detail: dict[str, Any]) -> None:
        events.put(self.client("events"), self.settings.event_bus, detail_type, {**detail, "timestamp": now_iso()})

    # -------------------------------------------------------- start
    def start(self, event: dict[str, Any]) -> dict[str, Any]:
        """Record the enrollment (once: a retried or duplicate start changes nothing), check the
        clock, announce ``Sequence Enrolled``; the cursor points at the first step."""
        inp = event["input"]
        name, key, version = inp["sequence"], inp["key"], int(inp["version"])
        seq = definition(self.ddb, self.table, name, version)
        try:
            # anchored now; carried in the cursor (a retried start anchors again: seconds apart)
            clock = Clock.from_input(inp.get("clock"), allowed=self.settings.local_stack)
        except ClockError as exc:
            raise sq.InvalidSequence(str(exc)) from None
        try:
            self.ddb.put_item(
                TableName=self.table,
                Item=dynamo.to_item(
                    {
                        "sequence": name,
                        "key": f"enr#{key}",
                        "status": "active",
                        "version": version,
                        "recipient": str(inp["to"]).lower(),
                        "enrollmentId": inp["enrollmentId"],
                        "executionArn": event.get("executionArn", ""),
                        "step": seq.steps[0].id,
                        "startedAt": now_iso(),
                        "history": [],
                    }
                ),
                ConditionExpression="attribute_not_exists(#k)",
                ExpressionAttributeNames={"#k": "key"},
            )
            self.emit("Sequence Enrolled", {"sequence": name, "version": version, "enrollment": key})
        except self.ddb.exceptions.ConditionalCheckFailedException:
            pass  # a retry of this step: recorded (and announced) already
        return {
            "step": seq.steps[0].id,
            "lastEmailId": None,
            "action": "continue",
            "waitSeconds": 0,
            "count": 0,
            "clock": clock.as_dict(),
        }

    # -------------------------------------------------------- one step
    def step(self, event: dict[str, Any]) -> dict[str, Any]:
        inp = event["input"]
        cursor = inp["cursor"]
        name, key = inp["sequence"], inp["key"]
        seq = definition(self.ddb, self.table, name, int(inp["version"]))
        current = enrollment(self.ddb, self.table, name, key)
        if current is None or current.get("status") != "active":
            # exited (sesflow sequence exit) or ended; or never started: nothing to do
            return {**cursor, "action": "done"}
        step_id = cursor.get("step")
        if step_id is None:
            return self._finish(name, key, "completed", "the last step is done", cursor)
        if step_id == "exit":
            return self._finish(name, key, "exited", "a branch went to exit", cursor)
        i = seq.index(step_id)
        step = seq.steps[i]
        count = int(cursor.get("count") or 0) + 1
        base = {**cursor, "count": count, "waitSeconds": 0, "action": "continue"}
        if step.type == "exit":
            return self._finish(name, key, "exited", f"exit step {step.id}", cursor)
        if step.type == "wait":
            clock = Clock.from_dict(cursor.get("clock"))
            seconds = sq.wait_seconds(step, clock.now(), inp.get("timezone") or "UTC")
            real = max(1, math.ceil(clock.real_seconds(seconds)))
            _history(
                self.ddb,
                self.table,
                name,
                key,
                {"step": step.id, "type": "wait", "seconds": round(seconds)},
                step=step.id,
            )
            return {**base, "step": seq.after(i), "action": "wait", "waitSeconds": real}
        if step.type == "branch":
            facts = self._facts(cursor.get("lastEmailId"))
            target = sq.branch_target(step, facts)
            chosen = seq.after(i, target)
            _history(
                self.ddb,
                self.table,
                name,
                key,
                {"step": step.id, "type": "branch", "to": chosen or "end"},
                step=step.id,
            )
            self.emit(
                "Sequence Step", {"sequence": name, "enrollment": key, "step": step.id, "type": "branch", "to": chosen}
            )
            return {**base, "step": chosen}
        return self._send(inp, seq, i, base)

    def _send(self, inp: dict[str, Any], seq: sq.Sequence, i: int, base: dict[str, Any]) -> dict[str, Any]:
        step, name, key = seq.steps[i], inp["sequence"], inp["key"]
        topic = str(step.raw.get("topic") or seq.topic)
        address = str(inp["to"]).lower()
        if suppression.suppressed_among(self.ddb, self.settings.suppression_table, [address], topic):
            return self._finish(
                name, key, "exited", f"unsubscribed or suppressed for {topic} before step {step.id}", base
            )
        email_id = sq.email_id(key, step.id)
        request = {
            "emailId": email_id,
            "template": step.template,
            "to": inp["to"],
            "topic": topic,
            "data": {**(inp.get("data") or {}), **(step.raw.get("data") or {})},
            "tags": {"sequence": name, "sequenceStep": step.id},
        }
        sfn = self.client("stepfunctions")
        try:
            sfn.start_execution(
                stateMachineArn=self.settings.send_state_machine_arn, name=email_id, input=json.dumps(request)
            )
        except sfn.exceptions.ExecutionAlreadyExists:
            pass  # this step ran before (a retry): the same email, sent once by the ledger
        _history(
            self.ddb,
            self.table,
            name,
            key,
            {"step": step.id, "type": "send", "emailId": email_id},
            step=step.id,
            lastEmailId=email_id,
        )
        self.emit(
            "Sequence Step", {"sequence": name, "enrollment": key, "step": step.id, "type": "send", "emailId": email_id}
        )
        return {**base, "step": seq.after(i), "lastEmailId": email_id}

    def _facts(self, email_id: str | None) -> dict[str, Any]:
        if not email_id:
            return {}
        item = self.ddb.get_item(
            TableName=self.settings.tracking_table, Key={"emailId": {"S": email_id}}, ConsistentRead=True
        ).get("Item")
        return dynamo.to_plain(item) if item else {}

    def fail(self, event: dict[str, Any]) -> dict[str, Any]:
        """A step failed past its retries: the enrollment is ``failed`` (not left ``active`` for
        ever) with the error, and ``Sequence Failed`` is announced; the execution then fails."""
        inp, error = event["input"], event.get("error") or {}
        name, key = inp["sequence"], inp["key"]
        reason = f"{error.get('Error', 'error')}: {str(error.get('Cause', ''))[:300]}"
        if end_enrollment(self.ddb, self.table, name, key, "failed", reason):
            self.emit("Sequence Failed", {"sequence": name, "enrollment": key, "reason": reason})
        return {"status": "failed"}

    def _finish(self, name: str, key: str, status: str, reason: str, cursor: dict[str, Any]) -> dict[str, Any]:
        if end_enrollment(self.ddb, self.table, name, key, status, reason):
            detail_type = "Sequence Completed" if status == "completed" else "Sequence Exited"
            self.emit(detail_type, {"sequence": name, "enrollment": key, "reason": reason})
        return {**cursor, "action": "done"}  # ended already: a retry, or sesflow sequence exit


def end_enrollment(ddb: Any, table: str, name: str, key: str, status: str, reason: str) -> bool:
    """``active`` -> ``status`` with the reason; False when it had ended already."""
    try:
        ddb.update_item(
            TableName=table,
            Key=enrollment_item_key(name, key),
            UpdateExpression="SET #s = :s, reason = :r, endedAt = :now",
            ConditionExpression="#s = :active",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={
                ":s": {"S": status},
                ":r": {"S": reason},
                ":now": {"S": now_iso()},
                ":active": {"S": "active"},
            },
        )
    except ddb.exceptions.ConditionalCheckFailedException:
        return False
    return True


def exit_enrollment(ddb: Any, events_client: Any, table: str, bus: str, name: str, key: str, reason: str) -> bool:
    """``sesflow sequence exit``: record ``exited`` (only while active) and announce it; the
    caller then stops the execution. False when it had ended already."""
    if not end_enrollment(ddb, table, name, key, "exited", reason):
        return False
    detail = {"sequence": name, "enrollment": key, "reason": reason, "timestamp": now_iso()}
    events.put(events_client, bus, "Sequence Exited", detail)
    return True

"""A small staged campaign in AWS: 20 mailbox-simulator recipients in two stages (50 %, 100 %)
through the campaign state machine, as ``sesflow campaign start`` runs it."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest

from sesflow.cli.campaign import campaign
from sesflow.client import TERMINAL
from sesflow.target import Target

from ..helpers import poll
from .conftest import NEWSLETTER, SIMULATOR, delete_prefix, stop_if_running

pytestmark = pytest.mark.cloud

RECIPIENTS = 20
CAMPAIGN_TIMEOUT = 15 * 60.0


def test_staged_campaign(cloud: Target, run_id: str, cleanup: contextlib.ExitStack) -> None:
    cid = f"cloud-{run_id}-campaign"
    bucket = cloud.outputs["CampaignsBucketName"]
    key = f"uploads/{cid}/recipients.csv"
    cleanup.callback(delete_prefix, cloud, bucket, f"uploads/{cid}/")
    cleanup.callback(delete_prefix, cloud, bucket, f"campaigns/{cid}/")  # manifests, rejects, report
    rows = [f"success+{run_id}-{i}@{SIMULATOR},Reader {i}" for i in range(RECIPIENTS)]
    cloud.clients.client("s3").put_object(Bucket=bucket, Key=key, Body="\n".join(["email,name", *rows]).encode())

    payload: dict[str, Any] = {
        "campaignId": cid,
        "template": NEWSLETTER["template"],
        "topic": NEWSLETTER["topic"],
        "recipients": {"key": key},
        "data": NEWSLETTER["data"],
        "stages": [50, 100],
        # a short look at the first stage; with minSample above the list size the gate never halts
        "gate": {"observeSeconds": 5, "minSample": 1000},
    }
    sfn = cloud.clients.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=cloud.outputs["CampaignStateMachineArn"], name=cid, input=json.dumps(payload)
    )["executionArn"]
    cleanup.callback(stop_if_running, cloud, arn)  # runs before the S3 cleanup (last in, first out)

    def ended() -> dict[str, Any] | None:
        desc: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        return desc if desc["status"] in TERMINAL else None

    desc = poll(ended, CAMPAIGN_TIMEOUT, 5.0, what=f"campaign {cid} ends")
    assert desc is not None
    assert desc["status"] == "SUCCEEDED", desc
    report: dict[str, Any] = json.loads(desc["output"])
    assert report["status"] == "completed", report
    assert report["counts"]["valid"] == RECIPIENTS and report["counts"]["suppressed"] == 0, report["counts"]
    assert sum(report["counts"]["planned"]) == RECIPIENTS and len(report["counts"]["planned"]) == 2, report["counts"]
    assert report["totals"]["accepted"] == RECIPIENTS, report["totals"]
    assert campaign(cloud, cid)["status"] == "completed"

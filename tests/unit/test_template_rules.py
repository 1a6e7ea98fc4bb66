"""AWS rules the local stack cannot enforce, checked on template.yaml itself.

Each test names the rule and the way a deployment would break without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sesflow.cfn_yaml import duplicate_keys, load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]


def of_type(*types: str) -> dict[str, Any]:
    return {lid: r for lid, r in RESOURCES.items() if r["Type"] in types}


def _patterns(resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The event patterns of a rule (both branches of an ``Fn::If``) or SAM event source."""
    props = resource.get("Properties", {})
    if resource["Type"] == "AWS::Events::Rule":
        pattern = props["EventPattern"]
        return list(pattern["Fn::If"][1:]) if "Fn::If" in pattern else [pattern]
    return [
        e["Properties"]["Pattern"]
        for e in props.get("Events", {}).values()
        if e["Type"] == "EventBridgeRule" and "Pattern" in e["Properties"]
    ]


#: this stack's configuration sets: the main one, and with EngagementTracking the untracked one
OUR_SETS = {
    "Fn::If": [
        "UseEngagementTracking",
        [{"Ref": "ConfigurationSet"}, {"Ref": "UntrackedConfigurationSet"}],
        [{"Ref": "ConfigurationSet"}],
    ]
}


def test_every_ses_event_rule_matches_only_this_stacks_configuration_set() -> None:
    """The default bus carries every stack's SES events: a rule without the
    configuration-set filter lets a dev stack's bounce suppress an address in prod."""
    checked = 0
    for lid, resource in RESOURCES.items():
        for pattern in _patterns(resource):
            if pattern.get("source") != ["aws.ses"]:
                continue
            tags = pattern.get("detail", {}).get("mail", {}).get("tags", {})
            assert tags.get("ses:configuration-set") == OUR_SETS, lid
            checked += 1
    assert checked >= 3  # SesEvents, and DeliveryEventsRule's two patterns (Email Sent is not routed)


def test_the_sns_feedback_subscription_filters_on_the_configuration_set() -> None:
    sub = RESOURCES["FeedbackTopicSubscription"]["Properties"]
    assert sub["FilterPolicyScope"] == "MessageBody"
    assert sub["FilterPolicy"]["mail"]["tags"]["ses:configuration-set"] == OUR_SETS


@pytest.mark.parametrize("topic", sorted(of_type("AWS::SNS::Topic")))
def test_topics_are_encrypted_with_a_key_cloudwatch_and_ses_may_use(topic: str) -> None:
    """The AWS-managed key (alias/aws/sns) cannot be granted to CloudWatch or SES: alarm
    mail and SNS feedback would be dropped silently."""
    key_ref = RESOURCES[topic]["Properties"]["KmsMasterKeyId"]
    assert isinstance(key_ref, dict) and "Ref" in key_ref, f"{topic}: {key_ref}"
    key = RESOURCES[key_ref["Ref"]]
    assert key["Type"] == "AWS::KMS::Key"
    grants = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if isinstance(s["Principal"], dict) and "Service" in s["Principal"]
    ]
    services = {svc for s in grants for svc in s["Principal"]["Service"]}
    assert {"cloudwatch.amazonaws.com", "ses.amazonaws.com"} <= services
    actions = {a for s in grants for a in s["Action"]}
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= actions


@pytest.mark.parametrize("function", ["SendFunction", "CampaignSendBatchFunction"])
def test_sandbox_accounts_may_authorise_sends_against_recipient_identities(function: str) -> None:
    """In the SES sandbox ses:SendEmail is also authorised against the recipient identity:
    with SesSandbox=true the policy adds identity/*, otherwise only the stack's identity."""
    [statement] = [
        s
        for p in RESOURCES[function]["Properties"]["Policies"]
        for s in p.get("Statement", [])
        if "ses:SendEmail" in s["Action"]
    ]
    resources = statement["Resource"]
    assert {
        "Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/${SenderIdentity}"
    } in resources
    [conditional] = [r for r in resources if "Fn::If" in r and r["Fn::If"][0] == "IsSesSandbox"]
    assert conditional["Fn::If"][1]["Fn::Sub"].endswith(":identity/*")
    assert conditional["Fn::If"][2] == {"Ref": "AWS::NoValue"}
    # and the untracked configuration set, only when it exists (EngagementTracking)
    [untracked] = [r for r in resources if "Fn::If" in r and r["Fn::If"][0] == "UseEngagementTracking"]
    assert untracked["Fn::If"][1]["Fn::Sub"].endswith(":configuration-set/${UntrackedConfigurationSet}")


def _async_invoked_functions() -> set[str]:
    """Functions EventBridge or SNS invoke (asynchronously, as they always do)."""
    found = set()
    for lid, r in of_type("AWS::Serverless::Function").items():
        if any(
            e["Type"] in ("EventBridgeRule", "SNS", "CloudWatchEvent", "Schedule", "ScheduleV2", "S3")
            for e in r["Properties"].get("Events", {}).values()
        ):
            found.add(lid)
    for r in of_type("AWS::Events::Rule").values():
        for target in r["Properties"].get("Targets", []):
            arn = target["Arn"]
            if (
                isinstance(arn, dict)
                and "Fn::GetAtt" in arn
                and arn["Fn::GetAtt"][0] in RESOURCES
                and RESOURCES[arn["Fn::GetAtt"][0]]["Type"] == "AWS::Serverless::Function"
            ):
                found.add(arn["Fn::GetAtt"][0])
    for r in of_type("AWS::SNS::Subscription").values():
        if r["Properties"]["Protocol"] == "lambda":
            found.add(r["Properties"]["Endpoint"]["Fn::GetAtt"][0])
    return found


def test_every_asynchronously_invoked_function_keeps_its_failures() -> None:
    """Lambda retries a failed asynchronous invocation twice and then drops it, unless the
    function has an on-failure destination (a rule's DLQ only gets undeliverable events)."""
    functions = _async_invoked_functions()
    assert "FeedbackFunction" in functions
    for lid in functions:
        config = RESOURCES[lid]["Properties"].get("EventInvokeConfig")
        assert config, f"{lid} is invoked asynchronously but has no EventInvokeConfig"
        destination = config["DestinationConfig"]["OnFailure"]["Destination"]
        queue = destination["Fn::GetAtt"][0]
        alarms = [
            a
            for a in of_type("AWS::CloudWatch::Alarm").values()
            if {"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}
            in a["Properties"].get("Dimensions", [])
        ]
        assert alarms, f"no alarm on {queue}"


def test_stacks_and_stages_are_told_apart_in_metrics_tags_and_dashboards() -> None:
    import tomllib

    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == {"Fn::Sub": "sesflow/${AWS::StackName}"}
    assert TEMPLATE["Globals"]["Function"]["Tags"] == {"app": "sesflow", "stage": {"Ref": "Stage"}}
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for name, section in config.items():
        if isinstance(section, dict) and "deploy" in section:
            tags = section["deploy"]["parameters"]["tags"]
            assert 'app="sesflow"' in tags and f'stage="{name if name != "default" else "dev"}"' in tags, name
    body = RESOURCES["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert '"sesflow/${AWS::StackName}"' in body and '"stage", "${Stage}"' in body


def test_a_key_given_twice_is_refused_as_cloudformation_does(tmp_path: Path) -> None:
    text = (ROOT / "template.yaml").read_text()
    assert duplicate_keys(text) == []
    broken = text.replace("\nOutputs:\n", "\n  SendFailuresAlarm:\n    Type: AWS::SNS::Topic\n\nOutputs:\n", 1)
    (tmp_path / "t.yaml").write_text(broken)
    with pytest.raises(ValueError, match=r"duplicate keys: line [0-9]+: SendFailuresAlarm"):
        load_template(tmp_path / "t.yaml")


def test_sqs_event_sources_fit_lambdas_rules() -> None:
    """Lambda refuses an SQS event source whose queue's visibility timeout is below the
    function's timeout (AWS advises 6 x); partial batch responses must be switched on for a
    handler that returns ``batchItemFailures``. The local stack checks neither."""
    functions = of_type("AWS::Serverless::Function")
    found = 0
    for name, fn in functions.items():
        for event in (fn["Properties"].get("Events") or {}).values():
            if event["Type"] != "SQS":
                continue
            found += 1
            queue = TEMPLATE["Resources"][event["Properties"]["Queue"]["Fn::GetAtt"][0]]
            timeout = int(fn["Properties"].get("Timeout", TEMPLATE["Globals"]["Function"]["Timeout"]))
            assert int(queue["Properties"]["VisibilityTimeout"]) >= 6 * timeout, name
            assert event["Properties"].get("FunctionResponseTypes") == ["ReportBatchItemFailures"], name
            assert "RedrivePolicy" in queue["Properties"], (
                f"{name}: a message that kills the function must end somewhere"
            )
    assert found >= 1


def test_the_webhook_rule_may_write_to_its_queues_and_nothing_else_may() -> None:
    policy = TEMPLATE["Resources"]["WebhookQueuePolicy"]["Properties"]["PolicyDocument"]
    [statement] = policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["WebhookEventsRule", "Arn"]}}}
    rule = TEMPLATE["Resources"]["WebhookEventsRule"]["Properties"]
    assert rule["EventPattern"]["source"] == ["sesflow"]  # never SES's or another stack's events


def test_function_log_filtering_keeps_the_metric_lines() -> None:
    """Lambda's log-level filtering needs the JSON log format, and files a line without a
    ``level`` (Powertools' EMF metric lines) as INFO: an application level above INFO would
    drop every metric. Powertools filters its own lines (POWERTOOLS_LOG_LEVEL)."""
    config = TEMPLATE["Globals"]["Function"]["LoggingConfig"]
    assert config["LogFormat"] == "JSON"
    levels = TEMPLATE["Mappings"]["FunctionLogLevels"]
    assert set(levels) == set(TEMPLATE["Parameters"]["LogLevel"]["AllowedValues"])
    for level, mapped in levels.items():
        assert mapped["Application"] in ("TRACE", "DEBUG", "INFO"), level
        assert mapped["System"] in ("DEBUG", "INFO", "WARN"), level
    assert config["ApplicationLogLevel"] == {"Fn::FindInMap": ["FunctionLogLevels", {"Ref": "LogLevel"}, "Application"]}
    assert config["SystemLogLevel"] == {"Fn::FindInMap": ["FunctionLogLevels", {"Ref": "LogLevel"}, "System"]}
    env = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert env["POWERTOOLS_LOG_LEVEL"] == {"Ref": "LogLevel"}

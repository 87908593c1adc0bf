"""template.yaml is the one source of truth: these checks keep the code, the sample events and the local
stack honest about what it defines, and keep its security posture from eroding."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from local import template as tpl
from local.template import Intrinsic
from x3link import rescue
from x3link.config import Settings

ROOT = Path(__file__).parents[2]
FUNCTIONS = tpl.functions()


def test_only_the_callback_is_public() -> None:
    auth = {(route.method, route.path): route.auth for route in tpl.routes()}
    assert auth == {
        ("POST", "/pairings"): "AWS_IAM",
        ("GET", "/callback"): "NONE",
        ("POST", "/callback"): "NONE",
        ("GET", "/tenants/{tenant}"): "AWS_IAM",
        ("DELETE", "/tenants/{tenant}"): "AWS_IAM",
        ("GET", "/tenants/{tenant}/folders"): "AWS_IAM",
        ("POST", "/tenants/{tenant}/refresh"): "AWS_IAM",
    }


def test_contract_function_names_exist() -> None:
    contract = {"PairingStartFunction", "CallbackFunction", "FoldersFunction", "TokenRefreshFunction"}
    assert contract <= set(FUNCTIONS)


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_every_function_reads_its_settings_from_the_template(logical_id: str) -> None:
    refs = {name: f"value-of-{name}" for name in tpl.resources()} | {
        "SageX3Url": "https://api.eu-prod-sagex3.com/v1",
        "SageX3AllowedEndpoints": "https://api.us-prod-sagex3.com/v1",
        "PublicBaseUrl": "",
        "PairingSuccessUrl": "",
        "KeepAliveDays": "7",
        "GracePeriodHours": "72",
        "LogLevel": "INFO",
    }
    env = tpl.resolve(FUNCTIONS[logical_id].environment, refs)
    settings = Settings.from_env({key: str(value) for key, value in env.items()})
    assert settings.allowed_endpoints == (
        "https://api.eu-prod-sagex3.com/v1",
        "https://api.us-prod-sagex3.com/v1",
    )
    assert settings.keep_alive_seconds == 7 * 86400
    assert settings.grace_period_seconds == 72 * 3600


def _statements(logical_id: str) -> list[dict[str, Any]]:
    policies = tpl.resources()[logical_id]["Properties"]["Policies"]
    return [statement for policy in policies for statement in policy["Statement"]]


def _resource_names(value: Any) -> set[str]:
    if isinstance(value, Intrinsic):
        if value.name == "Ref":
            return {value.value}
        if value.name == "Fn::GetAtt":
            return {value.value[0]}
        return set(re.findall(r"\$\{([A-Za-z0-9]+)", value.value))
    if isinstance(value, list):
        return set().union(*(_resource_names(item) for item in value))
    return {str(value)}


@pytest.mark.parametrize("logical_id", sorted(FUNCTIONS))
def test_policies_name_resources_never_wildcards(logical_id: str) -> None:
    for statement in _statements(logical_id):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions), statement
        assert "*" not in _resource_names(statement["Resource"]), statement


# The functions that refresh, and so may park tokens and find a grant refused and judge it.
JUDGES = {"FoldersFunction", "PairingRefreshFunction", "TokenRefreshFunction"}


def _may(logical_id: str, action: str, resource: str | None = None) -> bool:
    """Whether one of the function's statements allows `action` (on `resource`, a logical id, if given)."""
    return any(
        action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
        and (resource is None or resource in _resource_names(s["Resource"]))
        for s in _statements(logical_id)
    )


def test_only_the_stream_publishes_and_only_the_functions_that_refresh_may_rescue() -> None:
    # Events come from committed changes only, so no function that changes a pairing publishes itself.
    assert {f for f in FUNCTIONS if _may(f, "events:PutEvents")} == {"PairingEventsFunction"}
    assert {f for f in FUNCTIONS if _may(f, "sqs:SendMessage", "TokenRescueQueue")} == JUDGES
    assert {f for f in FUNCTIONS if _may(f, "dynamodb:DeleteItem")} == {"CallbackFunction", "TenantsFunction"}
    assert not _may("TenantsFunction", "secretsmanager:GetSecretValue")


def test_every_function_that_judges_a_grant_sees_parked_tokens() -> None:
    for logical_id in JUDGES:
        for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
            assert _may(logical_id, action, "TokenRescueQueue"), (logical_id, action)
        assert _may(logical_id, "sqs:SendMessage", "TokenRescueDeadLetterQueue"), logical_id


def test_only_the_bundle_seals_rescued_tokens_and_only_for_the_rescue() -> None:
    sealers = {f for f in FUNCTIONS if _may(f, "kms:Encrypt")}
    assert sealers == JUDGES
    for logical_id in sealers:
        for statement in _statements(logical_id):
            if "kms:Encrypt" in statement["Action"]:
                condition = statement["Condition"]["StringEquals"]
                assert condition == {"kms:EncryptionContext:purpose": rescue.PURPOSE}, logical_id
    # What may write to the rescue queue may seal; what only drains it (the trigger) may not.
    assert not _may("TokenRescueFunction", "sqs:SendMessage", "TokenRescueQueue")


def test_the_rescue_queue_triggers_a_function_and_sets_aside_what_cannot_be_applied() -> None:
    resources = tpl.resources()
    queue = resources["TokenRescueQueue"]["Properties"]
    dead_letters = resources["TokenRescueDeadLetterQueue"]["Properties"]
    assert _resource_names(queue["RedrivePolicy"]["deadLetterTargetArn"]) == {"TokenRescueDeadLetterQueue"}
    # The drains count as receives too: a table outage must not send good tokens away.
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 50
    # Sealed tokens rest encrypted on both queues, and redriven messages keep their 14 days.
    assert _resource_names(dead_letters["KmsMasterKeyId"]) == {"DataKey"}
    assert dead_letters["MessageRetentionPeriod"] >= queue["MessageRetentionPeriod"] == 1209600

    triggers = [source for source in tpl.event_sources() if source.type == "SQS"]
    assert [(t.function, _resource_names(t.source)) for t in triggers] == [
        ("TokenRescueFunction", {"TokenRescueQueue"})
    ]
    assert triggers[0].reports_item_failures and triggers[0].batch_size == 10
    assert queue["VisibilityTimeout"] >= FUNCTIONS["TokenRescueFunction"].timeout  # SQS triggers require it

    rescuer = "TokenRescueFunction"
    for action in ("dynamodb:GetItem", "dynamodb:UpdateItem"):
        assert _may(rescuer, action, "PairingsTable"), action
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert _may(rescuer, action, "TokenRescueQueue"), action
    assert _may(rescuer, "sqs:SendMessage", "TokenRescueDeadLetterQueue")
    assert _may(rescuer, "kms:Decrypt", "DataKey")
    assert not _may(rescuer, "secretsmanager:GetSecretValue")  # it never calls Sage
    assert not _may(rescuer, "dynamodb:DeleteItem")

    env = FUNCTIONS[rescuer].environment
    assert _resource_names(env["TOKEN_RESCUE_DLQ_URL"]) == {"TokenRescueDeadLetterQueue"}
    assert _resource_names(env["DATA_KEY_ID"]) == {"DataKey"}
    assert "TokenRescueDeadLetterQueueUrl" in tpl.load()["Outputs"]


def test_every_committed_change_of_a_pairing_reaches_the_bus_or_a_dead_letter_queue() -> None:
    resources = tpl.resources()
    table = resources["PairingsTable"]["Properties"]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    (trigger,) = [source for source in tpl.event_sources() if source.type == "DynamoDB"]
    props = trigger.properties
    assert trigger.function == "PairingEventsFunction"
    assert _resource_names(trigger.source) == {"PairingsTable"}
    assert props["StartingPosition"] == "TRIM_HORIZON" and trigger.reports_item_failures
    # Retried until published, then set aside an hour before the stream's 24 h retention drops it.
    assert props["MaximumRetryAttempts"] == -1
    assert 3600 <= 86400 - props["MaximumRecordAgeInSeconds"] < 86400
    on_failure = props["DestinationConfig"]["OnFailure"]["Destination"]
    assert _resource_names(on_failure) == {"EventsDeadLetterQueue"}
    assert resources["EventsDeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"] is True
    assert "EventsDeadLetterQueueUrl" in tpl.load()["Outputs"]

    publisher = "PairingEventsFunction"
    for action in ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"):
        assert _may(publisher, action, "PairingsTable"), action
    assert _may(publisher, "events:PutEvents", "PairingEventsBus")
    assert _may(publisher, "sqs:SendMessage", "EventsDeadLetterQueue")
    assert not _may(publisher, "secretsmanager:GetSecretValue")  # it never calls Sage
    assert not _may(publisher, "dynamodb:DeleteItem") and not _may(publisher, "dynamodb:PutItem")


def test_data_at_rest_is_encrypted_and_recoverable() -> None:
    for logical_id, table in tpl.resources(type_="AWS::DynamoDB::Table").items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", logical_id
        assert props["SSESpecification"]["SSEType"] == "KMS", logical_id
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, logical_id
    states = tpl.resources()["PairingStatesTable"]["Properties"]
    assert states["TimeToLiveSpecification"] == {"AttributeName": "expires_epoch", "Enabled": True}
    assert tpl.resources()["PairingsTable"]["DeletionPolicy"] == "Retain"
    assert "KmsMasterKeyId" in tpl.resources()["TokenRescueQueue"]["Properties"]


def test_the_keep_alive_schedule_has_somewhere_to_fail_to() -> None:
    props = tpl.resources()["TokenRefreshFunction"]["Properties"]
    schedule = props["Events"]["KeepAlive"]
    assert schedule["Type"] == "Schedule"
    assert "DeadLetterConfig" in schedule["Properties"]
    assert props["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"] == "SQS"


@pytest.mark.parametrize("path", sorted((ROOT / "events").glob("*.json")), ids=lambda p: p.name)
def test_sample_events_match_a_template_trigger(path: Path) -> None:
    event = json.loads(path.read_text())
    if "httpMethod" in event:
        routes = {(route.method, route.path) for route in tpl.routes()}
        assert (event["httpMethod"], event["resource"]) in routes
        assert event["requestContext"]["stage"] == tpl.resources()["Api"]["Properties"]["StageName"]
    elif event.get("Records") and event["Records"][0].get("eventSource") == "aws:dynamodb":
        tables = {next(iter(_resource_names(s.source))) for s in tpl.event_sources() if s.type == "DynamoDB"}
        # CloudFormation names a table <stack>-<logical id>-<suffix>.
        assert all(any(f"-{table}-" in r["eventSourceARN"] for table in tables) for r in event["Records"])
    elif event.get("Records") and event["Records"][0].get("eventSource") == "aws:sqs":
        queues = {next(iter(_resource_names(s.source))) for s in tpl.event_sources() if s.type == "SQS"}
        # CloudFormation names a queue <stack>-<logical id>-<suffix>.
        assert any(f"-{queue}-" in event["Records"][0]["eventSourceARN"] for queue in queues)
    else:
        assert event["detail-type"] == "Scheduled Event"


def test_dependencies_are_pinned() -> None:
    for requirements in (ROOT / "layers/common/requirements.txt", ROOT / "requirements-dev.txt"):
        for line in requirements.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "-r", "-c")):
                assert "==" in line, f"{requirements.name}: {line} is not pinned"


# ---------------------------------------------------------------- alarms (README, "Operations")
def _alarms() -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in tpl.resources(type_="AWS::CloudWatch::Alarm").items()}


def _dead_letter_queues() -> set[str]:
    """Every queue failures are set aside in: redrive targets, failure destinations, schedules' DLQs."""
    resources = tpl.resources()
    found: set[str] = set()
    for queue in tpl.resources(type_="AWS::SQS::Queue").values():
        redrive = queue["Properties"].get("RedrivePolicy")
        if redrive:
            found |= _resource_names(redrive["deadLetterTargetArn"])
    for function in tpl.resources(type_="AWS::Serverless::Function").values():
        props = function["Properties"]
        configs = [props.get("EventInvokeConfig", {})]
        configs += [event.get("Properties", {}) for event in props.get("Events", {}).values()]
        for config in configs:
            on_failure = config.get("DestinationConfig", {}).get("OnFailure", {})
            if "Destination" in on_failure:
                found |= _resource_names(on_failure["Destination"])
            if "Arn" in config.get("DeadLetterConfig", {}):
                found |= _resource_names(config["DeadLetterConfig"]["Arn"])
    return {name for name in found if resources[name]["Type"] == "AWS::SQS::Queue"}


def test_every_alarm_explains_itself_and_notifies_the_alarm_topic() -> None:
    alarms = _alarms()
    assert alarms
    for logical_id, alarm in alarms.items():
        assert 80 <= len(alarm["AlarmDescription"]) <= 1024, logical_id  # what it means and what to do
        assert _resource_names(alarm["AlarmActions"]) == {"AlarmTopic"}, logical_id
    topic = tpl.resources()["AlarmTopic"]["Properties"]
    # CloudWatch cannot use alias/aws/sns: a customer managed key whose policy lets alarms use it.
    assert _resource_names(topic["KmsMasterKeyId"]) == {"DataKey"}
    statements = tpl.resources()["DataKey"]["Properties"]["KeyPolicy"]["Statement"]
    (for_alarms,) = [s for s in statements if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"]
    assert set(for_alarms["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert "AlarmTopicArn" in tpl.load()["Outputs"]


def test_every_dead_letter_queue_has_an_alarm() -> None:
    queues = _dead_letter_queues()
    assert queues == {"TokenRescueDeadLetterQueue", "EventsDeadLetterQueue", "RefreshFailureQueue"}
    watched = {
        next(iter(_resource_names(alarm["Dimensions"][0]["Value"])))
        for alarm in _alarms().values()
        if alarm.get("Namespace") == "AWS/SQS"
        and alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
        and alarm["Threshold"] == 1
        and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    }
    assert queues <= watched


def test_alarms_on_the_bundles_metrics_read_them_where_powertools_publishes_them() -> None:
    env = tpl.load()["Globals"]["Function"]["Environment"]["Variables"]
    code = "\n".join(p.read_text() for d in ("layers", "functions") for p in (ROOT / d).rglob("*.py"))
    alarms = _alarms().values()
    own = {a["MetricName"]: a for a in alarms if not a.get("Namespace", "AWS/").startswith("AWS/")}
    assert {"AppCredentialsRejected", "RefreshesHeld", "TokensLost", "RescueMessagesPoisoned"} <= set(own)
    for name, alarm in own.items():
        assert alarm["Namespace"] == env["POWERTOOLS_METRICS_NAMESPACE"], name
        assert alarm["Dimensions"] == [{"Name": "service", "Value": env["POWERTOOLS_SERVICE_NAME"]}], name
        assert f'"{name}"' in code, f"no code emits the metric {name}"
    (age,) = [a for a in _alarms().values() if a.get("MetricName") == "ApproximateAgeOfOldestMessage"]
    assert _resource_names(age["Dimensions"][0]["Value"]) == {"TokenRescueQueue"} and age["Threshold"] == 300

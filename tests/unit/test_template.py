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
        "LogLevel": "INFO",
    }
    env = tpl.resolve(FUNCTIONS[logical_id].environment, refs)
    settings = Settings.from_env({key: str(value) for key, value in env.items()})
    assert settings.allowed_endpoints == (
        "https://api.eu-prod-sagex3.com/v1",
        "https://api.us-prod-sagex3.com/v1",
    )
    assert settings.keep_alive_seconds == 7 * 86400


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


def test_only_the_functions_that_refresh_may_publish_or_rescue() -> None:
    def may(logical_id: str, action: str) -> bool:
        return any(
            action in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
            for s in _statements(logical_id)
        )

    assert {f for f in FUNCTIONS if may(f, "events:PutEvents")} == {"FoldersFunction", "TokenRefreshFunction"}
    assert {f for f in FUNCTIONS if may(f, "sqs:SendMessage")} == {"FoldersFunction", "TokenRefreshFunction"}
    assert {f for f in FUNCTIONS if may(f, "dynamodb:DeleteItem")} == {"CallbackFunction", "TenantsFunction"}
    assert not may("TenantsFunction", "secretsmanager:GetSecretValue")


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
    else:
        assert event["detail-type"] == "Scheduled Event"


def test_dependencies_are_pinned() -> None:
    for requirements in (ROOT / "layers/common/requirements.txt", ROOT / "requirements-dev.txt"):
        for line in requirements.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "-r", "-c")):
                assert "==" in line, f"{requirements.name}: {line} is not pinned"

"""`x3link doctor`'s verdicts, row by row: what each answer of Sage X3 or AWS says, and what to do."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.exceptions import ClientError

from x3link_cli import doctor
from x3link_cli.doctor import OK, PROBLEM, WARNING, Finding, StackView
from x3link_cli.errors import CliError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

SECRET_ID = "arn:aws:secretsmanager:eu-west-1:1:secret:creds"


def sage(message: str) -> bytes:
    return json.dumps({"message": message}).encode()


@pytest.mark.parametrize(
    ("status", "body", "verdict", "says"),
    [
        (403, sage("Pairing request not found"), OK, "accepts the client credentials"),
        (403, sage("The request has expired."), OK, "accepts the client credentials"),
        (401, sage("Unauthorised"), PROBLEM, "refused the client secret (401)"),
        (404, sage("Could not associate the requested url"), PROBLEM, "does not know the client id (404)"),
        (
            403,
            sage("The application registered on Sage Business Cloud is disabled"),
            PROBLEM,
            "disabled in the Sage App Registry",
        ),
        (403, b"<html>Forbidden</html>", WARNING, "does not tell whether"),
        (500, sage("Internal Server Error"), WARNING, "does not tell whether"),
        (400, sage("Missing required request parameters"), WARNING, "does not tell whether"),
    ],
)
def test_the_token_probe_is_judged_by_what_sage_refused(
    status: int, body: bytes, verdict: str, says: str
) -> None:
    finding = doctor.judge_token_probe(status, body, SECRET_ID)
    assert (finding.check, finding.status) == ("credentials", verdict)
    assert says in finding.message
    assert finding.message.endswith(".") and finding.message.count(". ") == 0  # one sentence
    if verdict == PROBLEM and status in (401, 404):
        assert SECRET_ID in finding.message  # where to put the right one


@pytest.mark.parametrize(
    ("status", "verdict"), [(200, OK), (302, OK), (404, PROBLEM), (400, WARNING), (500, WARNING)]
)
def test_the_callback_url_is_known_when_sage_shows_its_consent_page(status: int, verdict: str) -> None:
    finding = doctor.judge_authorise(status, b"", "https://api.example/prod/callback")
    assert finding.status == verdict
    assert "https://api.example/prod/callback" in finding.message


def test_a_breaker_is_closed_unless_its_item_says_open() -> None:
    assert doctor.judge_breaker("https://g/v1", None).status == OK
    assert doctor.judge_breaker("https://g/v1", {"breaker": {"S": "closed"}}).status == OK
    opened = doctor.judge_breaker(
        "https://g/v1", {"breaker": {"S": "open"}, "opened_at": {"N": "0"}, "last_status": {"N": "403"}}
    )
    assert opened == Finding(
        "breaker",
        PROBLEM,
        "The app's circuit breaker for https://g/v1 is open since 1970-01-01T00:00:00Z "
        "(Sage X3 answered 403): fix the client credentials, then `x3link tenants refresh TENANT` "
        "on an active pairing probes and closes it.",
    )


@pytest.mark.parametrize(
    ("queue", "visible", "in_flight", "verdict"),
    [
        ("RefreshQueue", 0, 0, OK),
        ("RefreshQueue", 3, 1, WARNING),
        ("EventsDeadLetterQueue", 0, 0, OK),
        ("EventsDeadLetterQueue", 0, 1, PROBLEM),
        ("RefreshFailureQueue", 2, 0, PROBLEM),
        ("WebhookDeadLetterQueue", 1, 0, PROBLEM),
    ],
)
def test_only_failures_set_aside_are_problems(queue: str, visible: int, in_flight: int, verdict: str) -> None:
    finding = doctor.judge_queue(queue, visible, in_flight)
    assert finding.status == verdict
    assert finding.message.startswith(queue)


def test_an_alarm_is_a_problem_only_while_it_fires() -> None:
    assert doctor.judge_alarm("X", "OK").status == OK
    assert doctor.judge_alarm("X", "INSUFFICIENT_DATA").status == OK
    assert doctor.judge_alarm("X", "ALARM").status == PROBLEM
    assert doctor.judge_alarm("X", None).status == WARNING


def test_a_local_stack_file_becomes_a_view_of_its_resources() -> None:
    view = doctor.from_local(
        {
            "api_url": "http://127.0.0.1:3000/",
            "stack_name": "local",
            "sage_x3_url": "http://127.0.0.1:8100/v1",
            "allowed_endpoints": ["http://127.0.0.1:8101/v1"],
            "resources": {"PairingsTable": {"type": "AWS::DynamoDB::Table", "id": "local-PairingsTable"}},
        }
    )
    assert view == StackView(
        name="local",
        resources={"PairingsTable": ("AWS::DynamoDB::Table", "local-PairingsTable")},
        sage_x3_url="http://127.0.0.1:8100/v1",
        allowed_endpoints=("http://127.0.0.1:8101/v1",),
        callback_url="http://127.0.0.1:3000/callback",
    )
    assert view.gateways == ("http://127.0.0.1:8100/v1", "http://127.0.0.1:8101/v1")


def test_a_finding_list_is_healthy_with_warnings_but_not_with_a_problem() -> None:
    assert doctor.healthy([Finding("a", OK, "."), Finding("b", WARNING, ".")])
    assert not doctor.healthy([Finding("a", OK, "."), Finding("b", PROBLEM, ".")])


class FakeCloudFormation:
    """DescribeStacks and ListStackResources as CloudFormation answers them, for one stack."""

    def __init__(self, stacks: dict[str, dict[str, Any]], resources: list[dict[str, str]]) -> None:
        self.stacks, self.resources = stacks, resources

    def describe_stacks(self, StackName: str) -> dict[str, Any]:  # boto3's parameter name
        if StackName not in self.stacks:
            error = {
                "Error": {"Code": "ValidationError", "Message": f"Stack with id {StackName} does not exist"}
            }
            raise ClientError(error, "DescribeStacks")  # type: ignore[arg-type]
        return {"Stacks": [self.stacks[StackName]]}

    def get_paginator(self, name: str) -> Any:
        assert name == "list_stack_resources"
        pages = [
            {"StackResourceSummaries": self.resources[:1]},
            {"StackResourceSummaries": self.resources[1:]},
        ]
        return SimpleNamespace(paginate=lambda StackName: pages)


def test_a_deployed_stack_is_read_from_cloudformation() -> None:
    stack = {
        "Parameters": [
            {"ParameterKey": "SageX3Url", "ParameterValue": "https://api.eu-prod-sagex3.com/v1"},
            {
                "ParameterKey": "SageX3AllowedEndpoints",
                "ParameterValue": "https://api.us-prod-sagex3.com/v1, ",
            },
            {"ParameterKey": "PublicBaseUrl", "ParameterValue": ""},
        ],
        "Outputs": [
            {
                "OutputKey": "CallbackUrl",
                "OutputValue": "https://abc.execute-api.eu-west-1.amazonaws.com/prod/callback",
            }
        ],
    }
    resources = [
        {
            "LogicalResourceId": "PairingsTable",
            "ResourceType": "AWS::DynamoDB::Table",
            "PhysicalResourceId": "t",
        },
        {
            "LogicalResourceId": "RefreshQueue",
            "ResourceType": "AWS::SQS::Queue",
            "PhysicalResourceId": "https://q",
        },
    ]
    view = doctor.from_cloudformation(_fake_cloudformation({"prod": stack}, resources), "prod")
    assert view.gateways == ("https://api.eu-prod-sagex3.com/v1", "https://api.us-prod-sagex3.com/v1")
    assert view.callback_url == "https://abc.execute-api.eu-west-1.amazonaws.com/prod/callback"
    assert view.of_type("AWS::SQS::Queue") == {"RefreshQueue": "https://q"}
    # Behind a custom domain, the callback URL is the public one.
    stack["Parameters"][2]["ParameterValue"] = "https://x3.example.com/"
    view = doctor.from_cloudformation(_fake_cloudformation({"prod": stack}, resources), "prod")
    assert view.callback_url == "https://x3.example.com/callback"
    with pytest.raises(CliError, match=r"^There is no stack named nope: check --stack and --region\.$"):
        doctor.from_cloudformation(_fake_cloudformation({}, []), "nope")


def _fake_cloudformation(stacks: dict[str, Any], resources: list[dict[str, str]]) -> CloudFormationClient:
    return cast("CloudFormationClient", FakeCloudFormation(stacks, resources))

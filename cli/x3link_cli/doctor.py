"""`x3link doctor`: is a stack healthy? Each check reads the stack's own resources (found through
CloudFormation, or `make run`'s stack file) and says, in one sentence, what it found and what to do.

The checks: the client credentials secret is there and Sage X3 accepts it (one token call that spends
nothing), each gateway's circuit breaker is closed, no queue holds failures, no alarm is firing, and Sage
X3 accepts the stack's callback URL for the app. The verdicts are pure functions of what AWS and Sage
answered, so they are tested without a socket; the clients come through a seam (`Clients`).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import click
import urllib3
from botocore.exceptions import BotoCoreError, ClientError

from x3link_cli import locate
from x3link_cli.errors import CliError
from x3link_cli.locate import aws_reason

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

OK, PROBLEM, WARNING = "ok", "problem", "warning"
# The code of a token call that no pairing ever had: Sage can only refuse it, and spends nothing on it.
PROBE_CODE = "x3link-doctor-probe"
PROBE_CUSTOMER = "https://x3link-doctor.invalid"
PLACEHOLDER_CLIENT_ID = "REPLACE_WITH_SAGE_CLIENT_ID"
# Sage's documented answers (docs/sage-x3.md): the first two are about the code, so the app was accepted.
CODE_REFUSALS = ("pairing request not found", "the request has expired")
APP_DISABLED = "the application registered on sage business cloud is disabled"
# Queues whose messages are failures set aside (the others hold work in progress).
DEAD_LETTER_SUFFIXES = ("DeadLetterQueue", "FailureQueue")
SAGE_TIMEOUT = urllib3.Timeout(connect=5, read=10)

Clients = Callable[[str], Any]  # an AWS service name -> a boto3 client of the stack's account and region


@dataclass(frozen=True)
class Finding:
    """One check's verdict: `status` ok, warning (worth a look) or problem, and one sentence."""

    check: str
    status: str
    message: str


@dataclass(frozen=True)
class StackView:
    """What the checks need of a stack: each resource's type and physical id, by logical id."""

    name: str
    resources: dict[str, tuple[str, str]]
    sage_x3_url: str
    allowed_endpoints: tuple[str, ...]
    callback_url: str

    def of_type(self, type_: str) -> dict[str, str]:
        return {logical: physical for logical, (kind, physical) in self.resources.items() if kind == type_}

    @property
    def gateways(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(g.rstrip("/") for g in (self.sage_x3_url, *self.allowed_endpoints) if g))


# --- finding the stack ---------------------------------------------------------------------------------


def from_cloudformation(cloudformation: CloudFormationClient, name: str) -> StackView:
    """A deployed stack, from DescribeStacks (parameters, outputs) and ListStackResources."""
    try:
        (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
        resources: dict[str, tuple[str, str]] = {}
        for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=name):
            for summary in page["StackResourceSummaries"]:
                if summary.get("PhysicalResourceId"):
                    resources[summary["LogicalResourceId"]] = (
                        summary["ResourceType"],
                        summary["PhysicalResourceId"],
                    )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":
            raise CliError(f"There is no stack named {name}: check --stack and --region.") from None
        raise CliError(f"CloudFormation refused to describe stack {name} ({aws_reason(exc)}).") from None
    except BotoCoreError as exc:
        raise CliError(f"Could not ask CloudFormation about stack {name} ({aws_reason(exc)}).") from None
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters") or []}
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
    public = parameters.get("PublicBaseUrl", "").rstrip("/")
    return StackView(
        name=name,
        resources=resources,
        sage_x3_url=parameters.get("SageX3Url", ""),
        allowed_endpoints=_split(parameters.get("SageX3AllowedEndpoints", "")),
        callback_url=f"{public}/callback" if public else str(outputs.get("CallbackUrl", "")),
    )


def from_local(data: Mapping[str, Any]) -> StackView:
    """`make run`'s stack, from its stack file (local/stack.py `describe()`)."""
    found = data.get("resources")
    if not isinstance(found, dict):
        raise CliError("The running `make run` does not list its resources: restart it with this checkout.")
    return StackView(
        name=str(data.get("stack_name") or "local"),
        resources={logical: (str(r["type"]), str(r["id"])) for logical, r in found.items()},
        sage_x3_url=str(data.get("sage_x3_url") or ""),
        allowed_endpoints=tuple(str(url) for url in data.get("allowed_endpoints") or ()),
        callback_url=f"{str(data['api_url']).rstrip('/')}/callback",
    )


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


# --- the verdicts (pure) -------------------------------------------------------------------------------


def _message(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return ""
    return str(answer.get("message") or "") if isinstance(answer, dict) else ""


def judge_token_probe(status: int, body: bytes, secret_id: str) -> Finding:
    """What Sage's answer to a token call with a made-up code says about the app's credentials."""
    message = _message(body)
    said = message.strip().lower()
    put = f"put the app's client id and secret from the Sage App Registry into {secret_id} (put-secret-value)"
    if status == 403 and said.startswith(CODE_REFUSALS):
        return Finding(
            "credentials", OK, "Sage X3 accepts the client credentials (it refused only the test code)."
        )
    if status == 403 and said.startswith(APP_DISABLED):
        return Finding(
            "credentials", PROBLEM, "The app is disabled in the Sage App Registry: enable it there."
        )
    if status == 401:
        return Finding("credentials", PROBLEM, f"Sage X3 refused the client secret (401): {put}.")
    if status == 404:
        return Finding("credentials", PROBLEM, f"Sage X3 does not know the client id (404): {put}.")
    shown = f" {message!r}" if message else ""
    return Finding(
        "credentials",
        WARNING,
        f"Sage X3 answered HTTP {status}{shown} to a test token call, which does not tell whether it accepts "
        "the client credentials: try again later, and look at the AppCredentialsRejected alarm.",
    )


def judge_authorise(status: int, body: bytes, callback_url: str) -> Finding:
    """What Sage's answer to an authorise request naming the stack's callback URL says about it."""
    if status < 400:
        return Finding(
            "callback", OK, f"Sage X3 accepts the stack's callback URL {callback_url} for this app."
        )
    said = _message(body).strip().lower()
    if status == 404:
        return Finding(
            "callback",
            PROBLEM,
            f"Sage X3 does not accept the callback URL {callback_url} for this app: enter it as the app's "
            "redirect URL in the Sage App Registry.",
        )
    if said.startswith(APP_DISABLED):
        return Finding("callback", PROBLEM, "The app is disabled in the Sage App Registry: enable it there.")
    return Finding(
        "callback",
        WARNING,
        f"Sage X3 answered HTTP {status} when asked about the callback URL {callback_url}: check it in the "
        "Sage App Registry.",
    )


def judge_breaker(gateway: str, item: Mapping[str, Any] | None) -> Finding:
    """A gateway's breaker item (`~app:<gateway>` in the pairings table), as DynamoDB returns it."""
    state = (item or {}).get("breaker", {}).get("S", "closed")
    if state != "open":
        return Finding("breaker", OK, f"The app's circuit breaker for {gateway} is closed.")
    since = (item or {}).get("opened_at", {}).get("N")
    when = f" since {_iso(float(since))}" if since else ""
    status = (item or {}).get("last_status", {}).get("N")
    said = f" (Sage X3 answered {status})" if status else ""
    return Finding(
        "breaker",
        PROBLEM,
        f"The app's circuit breaker for {gateway} is open{when}{said}: fix the client credentials, then "
        "`x3link tenants refresh TENANT` on an active pairing probes and closes it.",
    )


def judge_queue(logical_id: str, visible: int, in_flight: int) -> Finding:
    waiting = visible + in_flight
    if waiting == 0:
        return Finding("queues", OK, f"{logical_id} is empty.")
    if logical_id.endswith(DEAD_LETTER_SUFFIXES):
        return Finding(
            "queues",
            PROBLEM,
            f"{logical_id} holds {waiting} message{'s' if waiting != 1 else ''}: read them and do what "
            f"docs/operations.md says for its alarm, then delete them.",
        )
    return Finding(
        "queues",
        WARNING,
        f"{logical_id} holds {waiting} message{'s' if waiting != 1 else ''} in progress: normal during a "
        "keep-alive run or a burst; if it does not drain, read its function's logs.",
    )


def judge_alarm(logical_id: str, state: str | None, reason: str = "") -> Finding:
    if state is None:
        return Finding("alarms", WARNING, f"Alarm {logical_id} was not found: redeploy the stack.")
    if state == "ALARM":
        return Finding(
            "alarms",
            PROBLEM,
            f"Alarm {logical_id} is firing: do what its description (and docs/operations.md) says.",
        )
    return Finding("alarms", OK, f"Alarm {logical_id} is {state}.")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the checks (AWS and Sage) ---------------------------------------------------------------------------


@dataclass
class Doctor:
    view: StackView
    clients: Clients
    http: urllib3.PoolManager = field(default_factory=urllib3.PoolManager)

    def run(self) -> list[Finding]:
        credentials, findings = self.credentials()
        findings += self.callback(credentials)
        findings += self.breakers()
        findings += self.queues()
        findings += self.alarms()
        return findings

    def _one(self, type_: str, check: str) -> str:
        found = list(self.view.of_type(type_).values())
        if len(found) != 1:
            raise CliError(
                f"Stack {self.view.name} has no single {type_} ({check}): is it a Sage X3 link stack?"
            )
        return found[0]

    def credentials(self) -> tuple[dict[str, str] | None, list[Finding]]:
        """The secret's client id and secret, and whether Sage X3 accepts them."""
        secret_id = self._one("AWS::SecretsManager::Secret", "the client credentials")
        try:
            text = self.clients("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
        except ClientError as exc:
            return None, [
                Finding(
                    "credentials",
                    PROBLEM,
                    f"The client credentials secret cannot be read ({aws_reason(exc)}): "
                    f"check that {secret_id} exists and that you may read it.",
                )
            ]
        try:
            value = json.loads(text)
            client_id, client_secret = str(value["client_id"]), str(value["client_secret"])
        except (ValueError, KeyError, TypeError):
            return None, [
                Finding(
                    "credentials",
                    PROBLEM,
                    f"The secret {secret_id} is not JSON with client_id and "
                    "client_secret: put them there (put-secret-value).",
                )
            ]
        if client_id == PLACEHOLDER_CLIENT_ID or not client_id or not client_secret:
            return None, [
                Finding(
                    "credentials",
                    PROBLEM,
                    f"The secret {secret_id} still holds the generated placeholder: "
                    "put the app's client id and secret from the Sage App Registry there (put-secret-value).",
                )
            ]
        credentials = {"client_id": client_id, "client_secret": client_secret}
        body = {
            "grant_type": "authorization_code",
            "code": PROBE_CODE,
            "redirect_uri": self.view.callback_url,
            **credentials,
        }
        answer = self._sage("POST", "/token", json.dumps(body).encode(), {"Content-Type": "application/json"})
        if isinstance(answer, Finding):
            return None, [answer]
        finding = judge_token_probe(answer.status, answer.data, secret_id)
        return (credentials if finding.status == OK else None), [finding]

    def callback(self, credentials: Mapping[str, str] | None) -> list[Finding]:
        """Whether Sage X3 takes the stack's callback URL as this app's redirect URL (only once it has
        accepted the credentials: before, its refusal would say nothing about the URL)."""
        if credentials is None:
            return []
        query = urlencode(
            {
                "client_id": credentials["client_id"],
                "scope": "api.dataDelivery",
                "customer": PROBE_CUSTOMER,
                "redirect_uri": self.view.callback_url,
                "state": f"x3link-doctor-{secrets.token_hex(8)}",
            }
        )
        answer = self._sage("GET", f"/token/authorise?{query}", None, {})
        if isinstance(answer, Finding):
            return [answer]
        return [judge_authorise(answer.status, answer.data, self.view.callback_url)]

    def _sage(self, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> Any:
        url = f"{self.view.sage_x3_url.rstrip('/')}{path}"
        try:
            return self.http.request(
                method, url, body=body, headers=headers, timeout=SAGE_TIMEOUT, retries=False, redirect=False
            )
        except urllib3.exceptions.HTTPError as exc:
            return Finding(
                "credentials" if path == "/token" else "callback",
                PROBLEM,
                f"Sage X3 at {self.view.sage_x3_url} could not be reached ({type(exc).__name__}): check "
                "SageX3Url and the network.",
            )

    def breakers(self) -> list[Finding]:
        table = self._pairings_table()
        dynamodb = self.clients("dynamodb")
        found = []
        for gateway in self.view.gateways:
            try:
                item = dynamodb.get_item(TableName=table, Key={"tenant": {"S": f"~app:{gateway}"}}).get(
                    "Item"
                )
            except ClientError as exc:
                found.append(
                    Finding(
                        "breaker",
                        PROBLEM,
                        f"The pairings table cannot be read ({aws_reason(exc)}): "
                        f"check that {table} exists and that you may read it.",
                    )
                )
                continue
            found.append(judge_breaker(gateway, item))
        return found

    def _pairings_table(self) -> str:
        table = self.view.of_type("AWS::DynamoDB::Table").get("PairingsTable")
        if not table:
            raise CliError(f"Stack {self.view.name} has no PairingsTable: is it a Sage X3 link stack?")
        return table

    def queues(self) -> list[Finding]:
        sqs = self.clients("sqs")
        found = []
        for logical_id, url in sorted(self.view.of_type("AWS::SQS::Queue").items()):
            try:
                attributes = sqs.get_queue_attributes(
                    QueueUrl=url,
                    AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
                )["Attributes"]
            except ClientError as exc:
                found.append(
                    Finding(
                        "queues",
                        PROBLEM,
                        f"{logical_id} cannot be read ({aws_reason(exc)}): check "
                        "that you may call sqs:GetQueueAttributes on it.",
                    )
                )
                continue
            found.append(
                judge_queue(
                    logical_id,
                    int(attributes.get("ApproximateNumberOfMessages", 0)),
                    int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
                )
            )
        return found

    def alarms(self) -> list[Finding]:
        names = self.view.of_type("AWS::CloudWatch::Alarm")
        cloudwatch = self.clients("cloudwatch")
        states: dict[str, str] = {}
        listed = sorted(names.values())
        try:
            for start in range(0, len(listed), 100):
                for page in cloudwatch.get_paginator("describe_alarms").paginate(
                    AlarmNames=listed[start : start + 100]
                ):
                    states.update({a["AlarmName"]: a["StateValue"] for a in page.get("MetricAlarms", [])})
        except ClientError as exc:
            return [
                Finding(
                    "alarms",
                    PROBLEM,
                    f"The stack's alarms cannot be read ({aws_reason(exc)}): check "
                    "that you may call cloudwatch:DescribeAlarms.",
                )
            ]
        return [judge_alarm(logical_id, states.get(name)) for logical_id, name in sorted(names.items())]


def healthy(findings: Iterable[Finding]) -> bool:
    return all(finding.status != PROBLEM for finding in findings)


def as_json(view: StackView, findings: list[Finding]) -> dict[str, Any]:
    return {"stack": view.name, "healthy": healthy(findings), "findings": [asdict(f) for f in findings]}


MARKS = {OK: "ok     ", WARNING: "warning", PROBLEM: "PROBLEM"}


def lines(findings: Iterable[Finding]) -> list[str]:
    return [f"{MARKS[f.status]}  {f.check:<11}  {f.message}" for f in findings]


def echo(view: StackView, findings: list[Finding], as_json_output: bool) -> None:
    """Print the findings (JSON, or a line each); exit 1 when one of them is a problem."""
    if as_json_output:
        click.echo(json.dumps(as_json(view, findings), indent=2))
    else:
        for line in lines(findings):
            click.echo(line)
        problems = sum(1 for f in findings if f.status == PROBLEM)
        summary = f"{problems} problem{'s' if problems != 1 else ''}" if problems else "healthy"
        click.echo(f"Stack {view.name}: {summary}.", err=True)
    if not healthy(findings):
        raise click.exceptions.Exit(1)


# --- the command ----------------------------------------------------------------------------------------


def _deployed(name: str, profile: str | None, region: str | None) -> tuple[StackView, Clients]:
    import boto3  # only when AWS is asked

    try:
        session = boto3.Session(profile_name=profile, region_name=region)
    except BotoCoreError as exc:
        raise CliError(f"The AWS profile {profile} cannot be used ({aws_reason(exc)}).") from None
    if not session.region_name:
        raise CliError("No AWS region is set: say --region, or set one in the profile or AWS_REGION.")
    view = from_cloudformation(session.client("cloudformation"), name)

    def clients(service: str) -> Any:
        return session.client(service)  # type: ignore[call-overload]

    return view, clients


def _local(data: Mapping[str, Any]) -> tuple[StackView, Clients]:
    import boto3

    keys = {}
    if isinstance(data.get("access_key_id"), str) and isinstance(data.get("secret_access_key"), str):
        keys = {
            "aws_access_key_id": data["access_key_id"],
            "aws_secret_access_key": data["secret_access_key"],
        }
    session = boto3.Session(region_name=str(data.get("region") or "us-east-1"), **keys)
    endpoint = str(data.get("aws_endpoint_url") or "") or None

    def clients(service: str) -> Any:
        return session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]

    return from_local(data), clients


@click.command(
    epilog="Exit codes: 0 no problem found (warnings may be printed); 1 a check found a problem, or the "
    "checks could not run (one sentence on stderr); 2 a usage error."
)
@click.option("--json", "as_json_output", is_flag=True, help="Print the findings as JSON.")
@click.pass_obj
def doctor(session: Any, as_json_output: bool) -> None:
    """Check a stack: its Sage X3 credentials, breakers, queues, alarms and callback URL.

    Each finding is one line: ok, warning or PROBLEM, what was checked, and what to do. Against AWS it needs
    --stack NAME (a URL does not say which resources are the stack's).
    """
    if session.url:
        raise click.UsageError(
            "doctor needs --stack NAME, or make run's stack: a URL does not name its resources."
        )
    if session.stack:
        view, clients = _deployed(session.stack, session.profile, session.region)
    else:
        data = locate.read_stack_file(
            locate.stack_file_candidates(os.environ, Path.cwd(), locate.venv_prefix())
        )
        view, clients = _local(data)
    try:
        findings = Doctor(view, clients).run()
    except BotoCoreError as exc:
        raise CliError(f"AWS could not be asked about stack {view.name} ({aws_reason(exc)}).") from None
    echo(view, findings, as_json_output)

"""`x3link doctor` against a stack built from template.yaml in moto and a Sage X3 emulator: a healthy stack
passes, and a wrong secret, a dead letter, a firing alarm, an open breaker and a callback URL Sage does not
know are each named, in one sentence with what to do, with exit code 1."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.sage import CLIENT_ID, CLIENT_SECRET
from x3link_cli import doctor
from x3link_cli.main import cli

API_URL = "http://127.0.0.1:3999"
CALLBACK = f"{API_URL}/callback"


@pytest.fixture
def sage() -> Iterator[Emulator]:
    """Sage X3 whose App Registry entry for the test app accepts only the stack's callback URL."""
    with Emulator(
        regions=("eu-prod", "us-prod"),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[CALLBACK],
    ) as emulator:
        yield emulator


def stack_file(stack: Stack, sage: Emulator, path: Path) -> Path:
    """What `make run` writes for the stack (local/stack.py `describe()`), for this moto stack."""
    path.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "api_url": API_URL,
                "aws_endpoint_url": "",  # moto's mock_aws answers in process
                "region": "us-east-1",
                "stack_name": "local",
                "sage_x3_url": sage.base_url("eu-prod"),
                "allowed_endpoints": [sage.base_url("us-prod")],
                "resources": stack.resource_ids(),
                "access_key_id": "testing",
                "secret_access_key": "testing",
            }
        )
    )
    return path


def run_doctor(stack: Stack, sage: Emulator, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    env = {"LOCAL_STACK_FILE": str(stack_file(stack, sage, tmp_path / "stack.json"))}
    result = CliRunner(mix_stderr=False).invoke(cli, ["doctor", *args], env=env)
    assert "Traceback" not in result.stderr
    return result.exit_code, result.stdout, result.stderr


def findings(stdout: str) -> list[dict[str, Any]]:
    answer = json.loads(stdout)
    assert set(answer) == {"stack", "healthy", "findings"}
    return list(answer["findings"])


def problems(stdout: str) -> list[str]:
    return [f["message"] for f in findings(stdout) if f["status"] == "problem"]


def test_a_healthy_stack_passes_every_check(stack: Stack, sage: Emulator, tmp_path: Path) -> None:
    code, stdout, _ = run_doctor(stack, sage, tmp_path, "--json")
    assert code == 0, stdout
    found = findings(stdout)
    assert json.loads(stdout)["healthy"] is True
    by_check = {f["check"] for f in found}
    assert by_check == {"credentials", "callback", "breaker", "queues", "alarms"}
    assert all(f["status"] == "ok" for f in found), found
    (credentials,) = [f for f in found if f["check"] == "credentials"]
    assert "accepts the client credentials" in credentials["message"]
    # One token call, with a code no pairing had: it spends no grant and issues no token.
    assert sage.count("token") == 1
    assert sage.count("refresh") == 0


def test_a_wrong_secret_a_dead_letter_and_a_firing_alarm_are_each_named(
    stack: Stack, sage: Emulator, tmp_path: Path
) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack.refs["ClientCredentialsSecret"],
        SecretString=json.dumps({"client_id": CLIENT_ID, "client_secret": "rotated-at-sage-not-here"}),
    )
    boto3.client("sqs").send_message(QueueUrl=stack.refs["EventsDeadLetterQueue"], MessageBody="{}")
    boto3.client("cloudwatch").set_alarm_state(
        AlarmName=stack.refs["TokenRescueBacklogAlarm"], StateValue="ALARM", StateReason="test"
    )

    code, stdout, _ = run_doctor(stack, sage, tmp_path, "--json")
    assert code == 1
    assert json.loads(stdout)["healthy"] is False
    said = problems(stdout)
    assert len(said) == 3, said
    secret, dead_letter, alarm = said
    assert secret.startswith("Sage X3 refused the client secret (401)")
    assert stack.refs["ClientCredentialsSecret"] in secret and "put-secret-value" in secret
    assert dead_letter == (
        "EventsDeadLetterQueue holds 1 message: read them and do what docs/operations.md says for its alarm, "
        "then delete them."
    )
    assert (
        alarm
        == "Alarm TokenRescueBacklogAlarm is firing: do what its description (and docs/operations.md) says."
    )
    assert "rotated-at-sage-not-here" not in stdout
    # Without --json: a line each, the problems marked, a summary on stderr.
    code, stdout, stderr = run_doctor(stack, sage, tmp_path)
    assert code == 1
    assert [line.split()[1] for line in stdout.splitlines() if line.startswith("PROBLEM")] == [
        "credentials",
        "queues",
        "alarms",
    ]
    assert stderr.strip() == "Stack local: 3 problems."


def test_an_open_breaker_and_an_unknown_callback_url_are_named(
    stack: Stack, sage: Emulator, tmp_path: Path
) -> None:
    gateway = sage.base_url("us-prod")
    boto3.client("dynamodb").put_item(
        TableName=stack.refs["PairingsTable"],
        Item={
            "tenant": {"S": f"~app:{gateway}"},
            "breaker": {"S": "open"},
            "opened_at": {"N": "1767225600"},
            "last_status": {"N": "401"},
        },
    )
    sage.add_client(CLIENT_ID, CLIENT_SECRET, ["https://elsewhere.example/callback"])

    code, stdout, _ = run_doctor(stack, sage, tmp_path, "--json")
    assert code == 1
    callback, breaker = problems(stdout)
    assert breaker.startswith(f"The app's circuit breaker for {gateway} is open since 2026-01-01T00:00:00Z")
    assert callback == (
        f"Sage X3 does not accept the callback URL {CALLBACK} for this app: enter it as the app's redirect "
        "URL in the Sage App Registry."
    )


def test_a_placeholder_secret_is_named_before_sage_is_asked(
    stack: Stack, sage: Emulator, tmp_path: Path
) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack.refs["ClientCredentialsSecret"],
        SecretString=json.dumps({"client_id": doctor.PLACEHOLDER_CLIENT_ID, "client_secret": "generated"}),
    )
    code, stdout, _ = run_doctor(stack, sage, tmp_path, "--json")
    assert code == 1
    (said,) = problems(stdout)
    assert "still holds the generated placeholder" in said
    assert sage.count("token") == 0


def test_doctor_wants_a_stack_not_a_url(tmp_path: Path) -> None:
    result = CliRunner(mix_stderr=False).invoke(cli, ["--url", "https://example.com/prod", "doctor"])
    assert result.exit_code == 2
    assert "doctor needs --stack NAME" in result.stderr

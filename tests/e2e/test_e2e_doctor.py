"""`x3link doctor` run as a subprocess against a stack started as `make run` starts it: healthy at first,
then a secret Sage X3 no longer accepts, a dead letter and a firing alarm are each named, exit code 1."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from local.sagex3_emulator import Emulator
from tests.e2e.conftest import RunningStack
from tests.e2e.test_e2e_cli import x3link
from tests.support.sage import CLIENT_ID, CLIENT_SECRET

pytestmark = pytest.mark.e2e


def aws(stack: RunningStack, service: str) -> Any:
    """A client of the stack's embedded AWS, found as the CLI finds it: through the stack file."""
    data = json.loads(stack.stack_file.read_text(encoding="utf-8"))
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=data["aws_endpoint_url"],
        region_name=data["region"],
        aws_access_key_id=data["access_key_id"],
        aws_secret_access_key=data["secret_access_key"],
    )


def resource(stack: RunningStack, logical_id: str) -> str:
    data = json.loads(stack.stack_file.read_text(encoding="utf-8"))
    return str(data["resources"][logical_id]["id"])


def test_doctor_finds_a_healthy_stack_then_names_what_broke(stack: RunningStack, sage: Emulator) -> None:
    healthy = x3link(stack, "doctor", "--json")
    assert healthy.returncode == 0, (healthy.stdout, healthy.stderr)
    report = json.loads(healthy.stdout)
    assert report["healthy"] is True
    assert {f["check"] for f in report["findings"]} == {
        "credentials",
        "callback",
        "breaker",
        "queues",
        "alarms",
    }

    # The secret regenerated at Sage but not stored; a dead letter; an alarm that fires.
    sage.add_client(CLIENT_ID, "regenerated-at-sage", [stack.redirect_uri])
    aws(stack, "sqs").send_message(QueueUrl=resource(stack, "TokenRescueDeadLetterQueue"), MessageBody="{}")
    aws(stack, "cloudwatch").set_alarm_state(
        AlarmName=resource(stack, "RefreshDeadLetterAlarm"), StateValue="ALARM", StateReason="e2e"
    )
    try:
        broken = x3link(stack, "doctor")
        assert broken.returncode == 1, (broken.stdout, broken.stderr)
        problems = [line for line in broken.stdout.splitlines() if line.startswith("PROBLEM")]
        assert len(problems) == 3, broken.stdout
        assert "Sage X3 refused the client secret (401)" in problems[0]
        assert "TokenRescueDeadLetterQueue holds 1 message" in problems[1]
        assert "Alarm RefreshDeadLetterAlarm is firing" in problems[2]
        assert broken.stderr.strip() == "Stack local: 3 problems."
        assert "Traceback" not in broken.stderr
    finally:
        sage.add_client(CLIENT_ID, CLIENT_SECRET, [stack.redirect_uri])
        aws(stack, "sqs").purge_queue(QueueUrl=resource(stack, "TokenRescueDeadLetterQueue"))
        aws(stack, "cloudwatch").set_alarm_state(
            AlarmName=resource(stack, "RefreshDeadLetterAlarm"), StateValue="OK", StateReason="e2e"
        )

"""No authorisation code, token or state reaches X-Ray: API Gateway's stage, whose trace segment records each
request's URL with its query string (`/callback?code=…&state=…`), is not traced; the functions trace
themselves (Lambda's own segments carry no payload), and a Powertools Tracer, should one ever be added,
records neither a response nor an exception."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from local import template as tpl

ROOT = Path(__file__).parents[2]
# The functions a browser reaches with a code, a state or a pairing link's id in its URL.
BROWSER_FUNCTIONS = ("CallbackFunction", "PairLinkFunction")


def test_the_api_stage_is_not_traced() -> None:
    for logical_id, api in tpl.resources(type_="AWS::Serverless::Api").items():
        assert api["Properties"].get("TracingEnabled", False) is False, logical_id
    stages = tpl.resources(type_="AWS::ApiGateway::Stage")
    assert all(not stage["Properties"].get("TracingEnabled") for stage in stages.values())


def test_the_functions_keep_their_own_traces() -> None:
    assert tpl.load()["Globals"]["Function"]["Tracing"] == "Active"


@pytest.mark.parametrize("logical_id", BROWSER_FUNCTIONS)
def test_a_tracer_in_the_browsers_functions_cannot_record_the_event_or_the_response(logical_id: str) -> None:
    env = tpl.functions()[logical_id].environment
    assert str(env["POWERTOOLS_TRACER_CAPTURE_RESPONSE"]).lower() == "false"
    assert str(env["POWERTOOLS_TRACER_CAPTURE_ERROR"]).lower() == "false"
    source = (ROOT / tpl.functions()[logical_id].code_uri / "app.py").read_text()
    # Powertools' Tracer never records the event itself: only a traced function's response and exception,
    # and annotations or metadata the code adds. None of those here.
    for use in re.findall(r"tracer\.capture_\w+\([^)]*\)|@tracer\.capture_\w+\b(?!\()", source):
        assert "capture_response=False" in use and "capture_error=False" in use, use
    assert "put_metadata" not in source and "put_annotation" not in source
    assert "aws_xray_sdk" not in source


def test_the_layer_ships_no_xray_sdk_that_could_record_a_call() -> None:
    """Without the X-Ray SDK nothing patches botocore or urllib3, so no call's URL or body is recorded."""
    requirements = (ROOT / "layers/common/requirements.txt").read_text().lower()
    assert "xray" not in requirements and "[tracer]" not in requirements

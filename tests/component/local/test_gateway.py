"""The local API gateway over real HTTP, with fake functions: the event they receive, what becomes of
their answers, routing, and API Gateway's own refusals."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import threading
import time
from typing import Any

import pytest

from local import sigv4
from local import template as tpl
from local.gateway import RouteTable
from tests.component.local.conftest import FakeApi
from tests.support.gateway import CREDENTIALS

CURL = shutil.which("curl")


def last_event(api: FakeApi) -> dict[str, Any]:
    return api.events[-1][1]


def test_event_of_a_signed_get_has_api_gateways_shape(fake_api: FakeApi) -> None:
    reply = fake_api.request(
        "GET",
        "/things/a%20b?color=red&color=blue&size=",
        headers={"X-Custom": "one", "User-Agent": "pytest-agent"},
        sign_with=CREDENTIALS,
    )
    assert reply.status == 200
    name, event, context = fake_api.events[-1]
    assert name == "ThingFunction"
    assert event["resource"] == "/things/{thing}"
    assert event["path"] == "/things/a b"
    assert event["httpMethod"] == "GET"
    assert event["pathParameters"] == {"thing": "a b"}
    assert event["queryStringParameters"] == {"color": "blue", "size": ""}
    assert event["multiValueQueryStringParameters"] == {"color": ["red", "blue"], "size": [""]}
    assert event["stageVariables"] is None
    assert event["headers"]["X-Custom"] == "one"
    assert event["multiValueHeaders"]["X-Custom"] == ["one"]
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["body"] is None
    assert event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["resourcePath"] == "/things/{thing}"
    assert ctx["httpMethod"] == "GET"
    assert ctx["path"] == "/prod/things/a b"
    assert ctx["stage"] == "prod"
    assert ctx["apiId"] == "local"
    assert ctx["domainName"] == f"127.0.0.1:{fake_api.gateway.port}"
    assert ctx["accountId"] == "123456789012"
    assert ctx["protocol"] == "HTTP/1.1"
    assert abs(ctx["requestTimeEpoch"] - time.time() * 1000) < 60_000
    assert len(ctx["requestId"]) == 36
    assert reply.headers["x-amzn-RequestId"] == ctx["requestId"]
    identity = ctx["identity"]
    assert identity["sourceIp"] == "127.0.0.1"
    assert identity["userAgent"] == "pytest-agent"
    assert identity["accessKey"] == "testing"
    assert identity["userArn"] == "arn:aws:iam::123456789012:user/local"
    assert identity["caller"] and identity["user"]
    assert context.function_name.endswith("ThingFunction")
    assert context.aws_request_id
    assert context.get_remaining_time_in_millis() > 0
    assert context.invoked_function_arn.startswith("arn:aws:lambda:us-east-1:123456789012:function:")


def test_event_of_an_unsigned_route_has_no_caller(fake_api: FakeApi) -> None:
    assert fake_api.request("GET", "/open").status == 200
    event = last_event(fake_api)
    assert event["queryStringParameters"] is None
    assert event["multiValueQueryStringParameters"] is None
    assert event["pathParameters"] is None
    identity = event["requestContext"]["identity"]
    assert identity["accessKey"] is None and identity["userArn"] is None and identity["caller"] is None


def test_text_bodies_arrive_as_text(fake_api: FakeApi) -> None:
    form = b"authorizationCode=abc&state=xyz"
    fake_api.request(
        "POST", "/open", body=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    event = last_event(fake_api)
    assert event["body"] == form.decode()
    assert event["isBase64Encoded"] is False


def test_binary_bodies_arrive_base64_encoded(fake_api: FakeApi) -> None:
    payload = bytes(range(256))
    fake_api.request("POST", "/open", body=payload, headers={"Content-Type": "application/octet-stream"})
    event = last_event(fake_api)
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_literal_path_wins_over_a_parameter(fake_api: FakeApi) -> None:
    fake_api.request("GET", "/things/special", sign_with=CREDENTIALS)
    assert fake_api.events[-1][0] == "SpecialFunction"


def test_proxy_result_becomes_the_http_response(fake_api: FakeApi) -> None:
    fake_api.handlers["OpenFunction"] = lambda event, context: {
        "statusCode": 303,
        "headers": {"Location": "https://example.com/done", "X-Both": "single"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "X-Both": ["multi"]},
        "body": base64.b64encode(b"\x00\x01binary").decode(),
        "isBase64Encoded": True,
    }
    reply = fake_api.request("GET", "/open")
    assert reply.status == 303
    assert reply.headers["Location"] == "https://example.com/done"
    assert reply.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert reply.headers.get_all("X-Both") == ["multi"]
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.body == b"\x00\x01binary"


def test_handler_exception_is_a_502_and_a_traceback_without_the_event(fake_api: FakeApi) -> None:
    def broken(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("boom")

    fake_api.handlers["OpenFunction"] = broken
    reply = fake_api.request("POST", "/open", body=b"code=secret-code-123")
    assert reply.status == 502
    assert reply.json == {"message": "Internal server error"}
    assert reply.headers["Content-Type"] == "application/json"
    logged = "\n".join(fake_api.log)
    assert "RuntimeError: boom" in logged
    assert "secret-code-123" not in logged


@pytest.mark.parametrize(
    "result", [None, {"body": "no status"}, {"statusCode": 200, "body": {"not": "text"}}]
)
def test_malformed_proxy_result_is_a_502(fake_api: FakeApi, result: Any) -> None:
    fake_api.handlers["OpenFunction"] = lambda event, context: result
    reply = fake_api.request("GET", "/open")
    assert reply.status == 502
    assert reply.json == {"message": "Internal server error"}


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nowhere"), ("DELETE", "/open"), ("GET", "/things"), ("GET", "/things/a/b"), ("GET", "/")],
)
def test_unknown_route_is_missing_authentication_token(fake_api: FakeApi, method: str, path: str) -> None:
    reply = fake_api.request(method, path, sign_with=CREDENTIALS)
    assert reply.status == 403
    assert reply.json == {"message": "Missing Authentication Token"}
    assert reply.headers["Content-Type"] == "application/json"
    assert fake_api.events == []


def test_unsigned_request_to_an_iam_route_is_refused(fake_api: FakeApi) -> None:
    reply = fake_api.request("GET", "/things/acme")
    assert reply.status == 403
    assert reply.json == {"message": "Missing Authentication Token"}
    assert fake_api.events == []


def test_badly_signed_request_is_refused_with_api_gateways_message(fake_api: FakeApi) -> None:
    wrong = sigv4.Credentials("testing", "wrong-secret", "us-east-1")
    reply = fake_api.request("GET", "/things/acme", sign_with=wrong)
    assert reply.status == 403
    assert reply.json["message"].startswith("The request signature we calculated does not match")
    assert reply.headers["x-amzn-ErrorType"] == "InvalidSignatureException"
    assert fake_api.events == []


def test_one_event_at_a_time_per_function(fake_api: FakeApi) -> None:
    running = 0
    peak = 0
    guard = threading.Lock()

    def slow(event: dict[str, Any], context: Any) -> dict[str, Any]:
        nonlocal running, peak
        with guard:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with guard:
            running -= 1
        return {"statusCode": 200, "body": "{}"}

    fake_api.handlers["OpenFunction"] = slow
    threads = [threading.Thread(target=fake_api.request, args=("GET", "/open")) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 1


def test_template_routes_are_all_served_with_their_auth() -> None:
    table = RouteTable(tpl.routes())
    expected = {
        ("POST", "/pairings"): ("PairingStartFunction", "AWS_IAM"),
        ("GET", "/callback"): ("CallbackFunction", "NONE"),
        ("POST", "/callback"): ("CallbackFunction", "NONE"),
        ("GET", "/tenants/acme"): ("TenantsFunction", "AWS_IAM"),
        ("DELETE", "/tenants/acme"): ("TenantsFunction", "AWS_IAM"),
        ("GET", "/tenants/acme/folders"): ("FoldersFunction", "AWS_IAM"),
    }
    for (method, path), (function, auth) in expected.items():
        route, _ = table.match(method, path)
        assert (route.function, route.auth) == (function, auth)


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
class TestCurlSigV4:
    """What `curl --aws-sigv4` sends (the contract's own example) is accepted, and only when right."""

    def curl(self, api: FakeApi, path: str, *extra: str, user: str = "testing:testing") -> tuple[int, str]:
        completed = subprocess.run(
            [CURL or "curl", "-s", "-w", "\n%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:execute-api",
             "--user", user, *extra, f"{api.url}{path}"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        body, _, status = completed.stdout.rpartition("\n")
        return int(status), body

    def test_signed_get(self, fake_api: FakeApi) -> None:
        status, body = self.curl(fake_api, "/things/acme")
        assert status == 200
        assert json.loads(body)["pathParameters"] == {"thing": "acme"}

    def test_signed_get_with_unsorted_query(self, fake_api: FakeApi) -> None:
        status, body = self.curl(fake_api, "/things/acme?b=2&a=1")
        assert status == 200
        assert json.loads(body)["queryStringParameters"] == {"b": "2", "a": "1"}

    def test_signed_post_with_json_body(self, fake_api: FakeApi) -> None:
        payload = json.dumps({"tenant": "acme", "customer": "https://x3.acme.example"})
        status, body = self.curl(fake_api, "/things", "-H", "Content-Type: application/json", "-d", payload)
        assert status == 200
        assert json.loads(json.loads(body)["body"]) == json.loads(payload)

    def test_wrong_secret(self, fake_api: FakeApi) -> None:
        status, body = self.curl(fake_api, "/things/acme", user="testing:wrong")
        assert status == 403
        assert json.loads(body)["message"].startswith("The request signature we calculated does not match")

    def test_wrong_region(self, fake_api: FakeApi) -> None:
        completed = subprocess.run(
            [CURL or "curl", "-s", "--aws-sigv4", "aws:amz:eu-west-1:execute-api",
             "--user", "testing:testing", f"{fake_api.url}/things/acme"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        assert json.loads(completed.stdout) == {
            "message": "Credential should be scoped to a valid region, not 'eu-west-1'. "
        }


def test_the_request_log_names_the_route_never_the_path_or_the_query(fake_api: FakeApi) -> None:
    """As API Gateway's access log: a pairing link's id sits in its path, a callback's code in its query."""
    reply = fake_api.request("GET", "/things/secret-in-path?code=secret-in-query", sign_with=CREDENTIALS)
    assert reply.status == 200
    deadline = time.monotonic() + 5  # the gateway logs a request after it has answered it
    while not any(" -> 200 " in line for line in fake_api.log) and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = [line for line in fake_api.log if " -> 200 " in line]
    assert lines == [lines[0]] and lines[0].startswith("GET /things/{thing} -> 200"), fake_api.log
    assert not any("secret" in line for line in fake_api.log)

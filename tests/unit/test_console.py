"""`x3link console`'s pure parts, without a socket: which calls it passes on (and how), who may drive it
(host, origin, the run's token), and what the page receives, over a sender that answers from a script."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.console import ScriptedApi
from x3link_cli.client import Answer
from x3link_cli.console import guard, routes
from x3link_cli.console.server import Console
from x3link_cli.errors import CliError
from x3link_cli.main import cli

PORT = 8765
TOKEN = "the-token-of-this-run"
OWN = {"host": f"127.0.0.1:{PORT}", "x-console-token": TOKEN}


# --- the routes passed on ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "target", "route", "query"),
    [
        (
            "GET",
            "/api/tenants?status=suspended&limit=100",
            "/tenants",
            {"status": "suspended", "limit": "100"},
        ),
        ("GET", "/api/tenants?cursor=eyJrIjoxfQ%3D%3D", "/tenants", {"cursor": "eyJrIjoxfQ=="}),
        ("GET", "/api/tenants/acme", "/tenants/acme", {}),
        ("POST", "/api/tenants/acme.eu/refresh", "/tenants/acme.eu/refresh", {}),
        ("DELETE", "/api/tenants/acme", "/tenants/acme", {}),
        ("GET", "/api/tenants/acme/activity?limit=50", "/tenants/acme/activity", {"limit": "50"}),
        ("GET", "/api/pairings?status=pending", "/pairings", {"status": "pending"}),
        ("POST", "/api/pairings", "/pairings", {}),
        ("DELETE", "/api/pairings/" + "ab" * 32, "/pairings/" + "ab" * 32, {}),
        ("GET", "/api/keep-alive/runs?limit=20", "/keep-alive/runs", {"limit": "20"}),
        (
            "GET",
            "/api/keep-alive/runs/20260101T000000Z-1a2b3c4d",
            "/keep-alive/runs/20260101T000000Z-1a2b3c4d",
            {},
        ),
    ],
)
def test_the_routes_the_page_shows_are_passed_on(
    method: str, target: str, route: str, query: dict[str, str]
) -> None:
    forward = routes.resolve(method, target)
    assert forward == routes.Forward(method, route, query, body=(method, route) == ("POST", "/pairings"))


@pytest.mark.parametrize(
    ("method", "target", "status", "error"),
    [
        # Routes that exist in the API but that the console neither shows nor acts through.
        ("GET", "/api/tenants/acme/folders", 404, "not_proxied"),
        ("DELETE", "/api/tenants/acme/folders/SEED/files/orders.csv", 404, "not_proxied"),
        ("POST", "/api/tenants/acme/folders/SEED/uploads", 404, "not_proxied"),
        ("POST", "/api/notifications", 404, "not_proxied"),
        ("GET", "/api/callback?code=x", 404, "not_proxied"),
        # A route it shows, with another method.
        ("PUT", "/api/tenants/acme", 405, "method_not_proxied"),
        ("DELETE", "/api/tenants", 405, "method_not_proxied"),
        ("DELETE", "/api/keep-alive/runs/r1", 405, "method_not_proxied"),
        # Parameters no route takes: a path walked up, a slash smuggled in, an empty one.
        ("GET", "/api/tenants/..", 400, "bad_path"),
        ("GET", "/api/tenants/a%2F..%2Fpairings", 400, "bad_path"),
        ("DELETE", "/api/tenants/", 400, "bad_path"),
        ("GET", "/api/tenants/acme%3Cscript%3E", 400, "bad_path"),
        # Query parameters a route does not take, or twice.
        ("GET", "/api/tenants/acme?cursor=x", 400, "bad_query"),
        ("GET", "/api/tenants?status=active&status=expired", 400, "bad_query"),
        ("GET", "/api/tenants?limit=", 400, "bad_query"),
        ("GET", "/api/keep-alive/runs?status=active", 400, "bad_query"),
        ("GET", "/tenants", 404, "not_proxied"),
    ],
)
def test_anything_else_is_refused(method: str, target: str, status: int, error: str) -> None:
    refused = routes.resolve(method, target)
    assert isinstance(refused, routes.Refusal)
    assert (refused.status, refused.error) == (status, error)
    assert refused.message.endswith(".")


# --- who may drive it --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "verdict"),
    [
        (OWN, guard.Verdict.ALLOWED),
        ({**OWN, "host": f"localhost:{PORT}"}, guard.Verdict.ALLOWED),
        (
            {**OWN, "origin": f"http://127.0.0.1:{PORT}", "sec-fetch-site": "same-origin"},
            guard.Verdict.ALLOWED,
        ),
        # DNS rebinding: another site's name, pointed at 127.0.0.1.
        ({**OWN, "host": f"rebound.attacker.example:{PORT}"}, guard.Verdict.FOREIGN_HOST),
        ({**OWN, "host": "127.0.0.1:9999"}, guard.Verdict.FOREIGN_HOST),
        ({"x-console-token": TOKEN}, guard.Verdict.FOREIGN_HOST),
        # Another site's page posting to the console.
        ({**OWN, "origin": "https://attacker.example"}, guard.Verdict.FOREIGN_ORIGIN),
        ({**OWN, "origin": "null"}, guard.Verdict.FOREIGN_ORIGIN),
        ({**OWN, "sec-fetch-site": "cross-site"}, guard.Verdict.FOREIGN_ORIGIN),
        ({**OWN, "sec-fetch-site": "same-site"}, guard.Verdict.FOREIGN_ORIGIN),
        # The token.
        ({"host": f"127.0.0.1:{PORT}"}, guard.Verdict.NO_TOKEN),
        ({**OWN, "x-console-token": ""}, guard.Verdict.NO_TOKEN),
        ({**OWN, "x-console-token": "the-token-of-another-run"}, guard.Verdict.WRONG_TOKEN),
        ({**OWN, "x-console-token": TOKEN + "x"}, guard.Verdict.WRONG_TOKEN),
        (None, guard.Verdict.AMBIGUOUS),
    ],
)
def test_only_its_own_page_with_the_runs_token_drives_the_api(
    headers: Mapping[str, str] | None, verdict: guard.Verdict
) -> None:
    decision = guard.judge_api(headers, PORT, TOKEN)
    assert decision.verdict is verdict
    assert decision.allowed is (verdict is guard.Verdict.ALLOWED)
    assert TOKEN not in decision.reason


def test_a_header_that_is_judged_may_come_once_only() -> None:
    assert guard.headers_of([("Host", "127.0.0.1:1"), ("Accept", "a"), ("accept", "b")]) == {
        "host": "127.0.0.1:1",
        "accept": "b",
    }
    assert guard.headers_of([("Host", f"127.0.0.1:{PORT}"), ("host", "attacker.example")]) is None
    assert guard.headers_of([("X-Console-Token", "a"), ("x-console-token", TOKEN)]) is None


def test_the_page_itself_needs_its_own_host_but_no_token() -> None:
    assert guard.judge_page({"host": f"127.0.0.1:{PORT}"}, PORT).allowed
    assert guard.judge_page({"host": "attacker.example"}, PORT).verdict is guard.Verdict.FOREIGN_HOST


# --- what the page receives --------------------------------------------------------------------------


def console(
    *answers: Answer | Exception, api_url: str = "http://127.0.0.1:3000"
) -> tuple[Console, ScriptedApi]:
    script = ScriptedApi(*answers)
    return Console(script, api_url, TOKEN, PORT), script


def test_a_listing_is_passed_on_signed_and_answered_as_the_api_answered() -> None:
    listed = {"tenants": [{"tenant": "acme", "status": "active"}]}
    served, script = console(Answer(200, json.dumps(listed).encode()))

    reply = served.respond("GET", "/api/tenants?status=active", OWN, None)

    assert (reply.status, json.loads(reply.body)) == (200, listed)
    assert script.sent == [{"method": "GET", "route": "/tenants", "query": {"status": "active"}, "body": b""}]


def test_a_new_link_passes_its_json_on() -> None:
    created = {"tenant": "acme", "pairing_url": "http://127.0.0.1:3000/pair/x", "expires_at": "2026-01-08"}
    served, script = console(Answer(201, json.dumps(created).encode()))
    body = json.dumps({"tenant": "acme", "customer": "https://x3.acme.example"}).encode()

    reply = served.respond("POST", "/api/pairings", {**OWN, "content-type": "application/json"}, body)

    assert (reply.status, json.loads(reply.body)) == (201, created)
    assert json.loads(script.sent[0]["body"]) == {"tenant": "acme", "customer": "https://x3.acme.example"}


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({**OWN, "content-type": "text/plain"}, b'{"tenant": "acme"}', 415),  # a form another site can send
        ({**OWN, "content-type": "application/json"}, b"tenant=acme", 400),
        ({**OWN, "content-type": "application/json"}, b"[1]", 400),
        ({**OWN, "content-type": "application/json"}, None, 400),
        ({**OWN, "origin": "https://attacker.example", "content-type": "application/json"}, b"{}", 403),
        ({**OWN, "x-console-token": "guessed"}, b"{}", 403),
    ],
)
def test_a_refused_call_sends_nothing(headers: dict[str, str], body: bytes | None, status: int) -> None:
    served, script = console()

    reply = served.respond("POST", "/api/pairings", headers, body)

    assert reply.status == status
    assert isinstance(json.loads(reply.body)["message"], str)
    assert script.sent == []


def test_a_delete_answers_204_with_no_body() -> None:
    served, script = console(Answer(204, b""))
    reply = served.respond("DELETE", "/api/tenants/acme", OWN, None)
    assert (reply.status, reply.body) == (204, b"")
    assert script.sent[0]["route"] == "/tenants/acme"


@pytest.mark.parametrize(
    ("answer", "status", "error", "message"),
    [
        (
            Answer(404, b'{"error": "not_paired", "message": "Tenant \'acme\' is not paired."}'),
            404,
            "not_paired",
            "Tenant 'acme' is not paired.",
        ),
        (
            Answer(
                403,
                b'{"message": "The request signature we calculated does not match"}',
                {"x-amzn-errortype": "InvalidSignatureException"},
            ),
            403,
            "api_refused",
            "The API refused the request's signature: check the AWS credentials (profile, role or "
            "environment) and the region it was signed with (InvalidSignatureException).",
        ),
        (
            Answer(502, b"<html>Bad Gateway</html>"),
            502,
            "api_refused",
            "The API answered HTTP 502, which the command does not understand.",
        ),
        (
            CliError("Could not reach 127.0.0.1:3000 (MaxRetryError): check that it is running."),
            502,
            "api_unreachable",
            "Could not reach 127.0.0.1:3000 (MaxRetryError): check that it is running.",
        ),
    ],
)
def test_a_failure_reaches_the_page_as_one_sentence(
    answer: Answer | Exception, status: int, error: str, message: str
) -> None:
    served, _ = console(answer)
    reply = served.respond("POST", "/api/tenants/acme/refresh", OWN, None)
    assert (reply.status, json.loads(reply.body)) == (status, {"error": error, "message": message})


def test_quota_exceeded_keeps_its_retry_after() -> None:
    served, _ = console(
        Answer(429, b'{"error": "quota_exceeded", "message": "Slow down."}', {"retry-after": "30"})
    )
    reply = served.respond("POST", "/api/tenants/acme/refresh", OWN, None)
    assert reply.status == 429 and ("Retry-After", "30") in reply.headers


def test_the_page_is_served_with_the_api_url_escaped() -> None:
    served, script = console(api_url="https://api.example/<script>alert(1)</script>")

    page = served.respond("GET", "/", {"host": f"localhost:{PORT}"}, None)

    assert page.status == 200 and page.content_type.startswith("text/html")
    assert b"https://api.example/&lt;script&gt;alert(1)&lt;/script&gt;" in page.body
    assert b"<script>alert" not in page.body
    assert served.respond("GET", "/console.js", {"host": f"localhost:{PORT}"}, None).status == 200
    assert served.respond("GET", "/", {"host": "attacker.example"}, None).status == 403
    assert served.respond("GET", "/etc/passwd", {"host": f"localhost:{PORT}"}, None).status == 404
    assert script.sent == []


def test_the_address_holds_the_token_in_its_fragment_only() -> None:
    served, _ = console()
    assert served.url == f"http://127.0.0.1:{PORT}/#token={TOKEN}"


def test_the_script_renders_api_values_as_text_only() -> None:
    """Tenant names and Sage's messages come from the API: the page never parses them as HTML."""
    script = (Path(routes.__file__).parent / "static" / "console.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script


def test_console_is_a_command_of_x3link() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "console" in result.output


def test_without_a_running_stack_the_console_fails_with_one_sentence(tmp_path: Path) -> None:
    missing = tmp_path / "stack.json"
    result = CliRunner(mix_stderr=False).invoke(
        cli, ["console", "--no-open"], env={"LOCAL_STACK_FILE": str(missing)}
    )
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: `make run` is not running (no {missing}): start it, or say --stack NAME or --url URL.\n"
    )

"""GET|POST /callback end to end: Sage X3 is the emulator over loopback HTTP, AWS is moto.

Every callback here carries parameters the emulator really issued (`approve()` / `reject()`), so a code
exchange that the app makes is one Sage would honour, and the emulator's request log shows exactly what
the app sent to Sage.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit

import boto3
import pytest

from local import template as tpl
from local.apigw_event import HttpRequest, build_event
from local.aws_resources import Stack
from local.lambda_context import for_function
from local.sagex3_emulator import Customer, Emulator
from tests.support.api import SIGNED, STAGE, Answer, call
from tests.support.sage import open_link, start_pairing
from x3link import wiring
from x3link.web.pages import FAILURE_SENTENCES

ACME = "https://x3.acme.example"
GLOBEX = "https://x3.globex.example"  # homed in us-prod where a test registers it
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SERVICE = "sage-x3-link"


# Import the handlers now, outside any test's output capture: Powertools' Logger writes to the sys.stdout of
# the moment it is created, and a subtest's capture is closed when the subtest ends.
for _function in ("PairingStartFunction", "CallbackFunction", "TenantsFunction", "FoldersFunction"):
    tpl.load_handler(_function)


# ---------------------------------------------------------------------------------------------- helpers
# The test's one browser: a pairing link it opened leaves a cookie, sent with every callback it delivers.
BROWSER: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _fresh_browser() -> Iterator[None]:
    BROWSER.clear()
    yield
    BROWSER.clear()


def _cookies() -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in BROWSER.items())} if BROWSER else {}


def _callback(method: str, **kwargs: Any) -> Answer:
    """A callback delivered by the test's browser (with its cookies)."""
    headers = {**kwargs.pop("headers", {}), **_cookies()}
    return call(method, "/callback", headers=headers, **kwargs)


def _post_form(params: dict[str, str]) -> Answer:
    return _callback("POST", body=urlencode(params), headers=FORM)


def _post_form_base64(params: dict[str, str]) -> Answer:
    """A form body as API Gateway hands it over when the API treats the media type as binary."""
    route = next(r for r in tpl.routes() if r.method == "POST" and r.path == "/callback")
    request = HttpRequest(
        method="POST",
        raw_path="/callback",
        raw_query="",
        headers=list({**FORM, **_cookies()}.items()),
        body=b"",
    )
    event = build_event(request, resource=route.path, path_parameters={}, stage=STAGE, caller=SIGNED)
    event["body"] = base64.b64encode(urlencode(params).encode()).decode("ascii")
    event["isBase64Encoded"] = True
    context = for_function(route.function, region="us-east-1", account_id=STAGE.account_id)
    result = tpl.load_handler(route.function)(event, context)
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers[key.lower()] = values[-1]
    return Answer(status=result["statusCode"], headers=headers, body=result.get("body") or "")


def _link(tenant: str, customer: str = ACME, **extra: Any) -> str:
    """Start a pairing and open its link in the test's browser: where Sage's consent page is."""
    browser = open_link(start_pairing(tenant, customer, **extra)["pairing_url"])
    BROWSER.update(browser.cookies)
    return browser.authorise_url


def _tenant(tenant: str) -> Answer:
    return call("GET", f"/tenants/{tenant}")


def _page_tenant(html: str) -> str:
    found = re.search(r'<strong id="tenant">(.*?)</strong>', html)
    assert found, html
    return found.group(1)


def _page_folders(html: str) -> list[str]:
    found = re.search(r'<ul id="folders">(.*?)</ul>', html, re.S)
    assert found, html
    return re.findall(r"<li>(.*?)</li>", found.group(1))


def _is_html(answer: Answer) -> bool:
    return answer.headers.get("content-type", "").startswith("text/html")


def _log_debug(caplog: pytest.LogCaptureFixture) -> None:
    """The functions' loggers at DEBUG for this test (Powertools gives each child logger its own level)."""
    for name in [SERVICE, *(n for n in logging.root.manager.loggerDict if n.startswith(f"{SERVICE}."))]:
        caplog.set_level(logging.DEBUG, logger=name)


def _page_message(answer: Answer) -> str:
    """The one sentence a failure page says: fixed for each kind of failure, never Sage's own text."""
    assert _is_html(answer), answer.headers
    assert "Pairing failed" in answer.body
    found = re.search(r'<p id="message">(.*?)</p>', answer.body, re.S)
    assert found, answer.body
    return found.group(1)


def _state_item_key(state: str) -> dict[str, Any]:
    return {"state_hash": {"S": hashlib.sha256(state.encode()).hexdigest()}}


def _exchanges(sage: Emulator) -> list[dict[str, Any]]:
    return [entry for entry in sage.requests if entry["route"] == "code"]


def _access_tokens_used(sage: Emulator) -> list[str]:
    return [
        entry["headers"]["Authorization"].removeprefix("Bearer ")
        for entry in sage.requests
        if entry["route"] == "folders"
    ]


# ---------------------------------------------------------------------------------------------- shapes
def _as_get_with_code(params: dict[str, str]) -> Answer:
    query = dict(params)
    query["code"] = query.pop("authorizationCode")
    return _callback("GET", query=query)


CALLBACK_SHAPES = {
    "GET query, authorizationCode": lambda params: _callback("GET", query=params),
    "GET query, code": _as_get_with_code,
    "POST form": _post_form,
    "POST JSON": lambda params: _callback("POST", json_body=params),
    "POST form, base64-encoded body": _post_form_base64,
}


def test_every_callback_shape_completes_the_pairing(sage: Emulator, stack: Stack, subtests: Any) -> None:
    for number, (shape, deliver) in enumerate(CALLBACK_SHAPES.items()):
        with subtests.test(msg=shape):
            tenant = f"tenant-{number}"
            params = sage.approve(_link(tenant), folders=["SEED", "X3"])
            answer = deliver(params)

            assert answer.status == 200, answer.body
            assert _is_html(answer)
            assert answer.headers.get("cache-control") == "no-store"
            assert _page_tenant(answer.body) == tenant
            assert _page_folders(answer.body) == ["SEED", "X3"]
            assert "DEMO" not in answer.body

            described = _tenant(tenant)
            assert described.status == 200
            assert described.json["status"] == "active"
            assert described.json["folders"] == ["SEED", "X3"]
            assert described.json["customer"] == ACME
            assert described.json["endpoint"] == sage.base_url("eu-prod")
    assert sage.count("code") == len(CALLBACK_SHAPES)


def test_the_exchange_sends_the_code_to_the_configured_gateway_with_the_registered_redirect(
    sage: Emulator, stack: Stack
) -> None:
    params = sage.approve(_link("acme"))
    assert "endpoint" not in params
    assert _post_form(params).status == 200

    (exchange,) = _exchanges(sage)
    assert exchange["region"] == "eu-prod"
    assert exchange["method"] == "POST"
    assert exchange["json"]["code"] == params["authorizationCode"]
    assert exchange["json"]["redirect_uri"] == f"https://{STAGE.domain_name}/prod/callback"


# ---------------------------------------------------------------------------------------------- regions
def test_regional_endpoint_takes_the_exchange_and_every_later_call(sage: Emulator, stack: Stack) -> None:
    sage.add_customer(Customer(GLOBEX, ["SEED", "X3"], region="us-prod"))
    link = _link("globex", GLOBEX)
    assert link.startswith(sage.base_url("eu-prod"))
    params = sage.approve(link, folders=["X3"])
    assert params["endpoint"] == sage.base_url("us-prod")

    answer = _post_form(params)

    assert answer.status == 200, answer.body
    assert _page_folders(answer.body) == ["X3"]
    (exchange,) = _exchanges(sage)
    assert exchange["region"] == "us-prod"
    described = _tenant("globex").json
    assert described["endpoint"] == sage.base_url("us-prod")

    folders = call("GET", "/tenants/globex/folders")
    assert folders.status == 200, folders.body
    assert [f["name"] for f in folders.json["folders"]] == ["X3"]
    assert [e["region"] for e in sage.requests if e["route"] == "folders"] == ["us-prod"]


def test_endpoint_is_compared_after_normalising_case_and_trailing_slash(sage: Emulator, stack: Stack) -> None:
    sage.add_customer(Customer(GLOBEX, ["SEED"], region="us-prod"))
    params = sage.approve(_link("globex", GLOBEX))
    us = urlsplit(sage.base_url("us-prod"))
    params["endpoint"] = f"HTTP://{us.netloc.upper()}{us.path}/"

    answer = _post_form(params)

    assert answer.status == 200, answer.body
    assert [e["region"] for e in _exchanges(sage)] == ["us-prod"]
    assert _tenant("globex").json["endpoint"] == sage.base_url("us-prod")


def _bypass_attempts(us_base: str, eu_base: str) -> dict[str, str]:
    us = urlsplit(us_base)
    host, port = us.hostname, us.port
    assert host == "127.0.0.1" and port
    eu_port = urlsplit(eu_base).port
    other_port = next(p for p in (1, 2, 3) if p not in (port, eu_port))
    return {
        "userinfo before the allowed host": f"http://evil@{host}:{port}/v1",
        "userinfo with password": f"http://evil:pw@{host}:{port}/v1",
        "allowed host as userinfo": f"http://{host}:{port}@evil.example/v1",
        "empty userinfo": f"http://@{host}:{port}/v1",
        "look-alike host suffix": f"http://{host}.evil.example:{port}/v1",
        "look-alike loopback host": f"http://127.0.0.10:{port}/v1",
        "look-alike host prefix": f"http://evil-{host}:{port}/v1",
        "same machine, other name": f"http://localhost:{port}/v1",
        "IPv6 loopback": f"http://[::1]:{port}/v1",
        "other path /v2": f"http://{host}:{port}/v2",
        "deeper path /v1/x": f"http://{host}:{port}/v1/x",
        "path /v1/token": f"http://{host}:{port}/v1/token",
        "no path": f"http://{host}:{port}",
        "path in upper case": f"http://{host}:{port}/V1",
        "dot segments": f"http://{host}:{port}/v1/../v1",
        "encoded slash": f"http://{host}:{port}/v1%2F..",
        "other port": f"http://{host}:{other_port}/v1",
        "default port": f"http://{host}/v1",
        "other scheme https": f"https://{host}:{port}/v1",
        "other scheme ftp": f"ftp://{host}:{port}/v1",
        "scheme-relative": f"//{host}:{port}/v1",
        "trailing junk": f"{us_base}junk",
        "trailing semicolon": f"{us_base};x=1",
        "fragment": f"{us_base}#x",
        "query string": f"{us_base}?x=1",
        "empty query string": f"{us_base}?",
        "backslash before @": f"http://evil.example\\@{host}:{port}/v1",
        "backslash after host": f"http://{host}:{port}\\@evil.example/v1",
        "backslashes as slashes": f"http:\\\\{host}:{port}\\v1",
        "leading space": f" {us_base}",
        "trailing space": f"{us_base} ",
        "trailing tab": f"{us_base}\t",
        "trailing newline": f"{us_base}\n",
        "space inside": f"http://{host} :{port}/v1",
        "two URLs": f"{us_base} https://evil.example/v1",
        "percent-encoded host": f"http://%31%32%37.0.0.1:{port}/v1",
        "ideographic dots": f"http://127\u30020\u30020\u30021:{port}/v1",
        "NUL byte": f"{us_base}\x00",
        "not a URL": "us-prod",
    }


def test_endpoint_off_the_allow_list_is_refused_before_anything_reaches_sage(
    sage: Emulator, stack: Stack, subtests: Any
) -> None:
    sage.add_customer(Customer(GLOBEX, ["SEED"], region="us-prod"))
    params = sage.approve(_link("globex", GLOBEX))
    sage.clear_requests()

    for label, endpoint in _bypass_attempts(sage.base_url("us-prod"), sage.base_url("eu-prod")).items():
        with subtests.test(msg=label):
            answer = _post_form({**params, "endpoint": endpoint})
            assert answer.status == 400, (label, answer.status, answer.body)
            assert _page_message(answer) == FAILURE_SENTENCES["endpoint_not_allowed"]
            assert sage.requests == [], [(e["region"], e["route"]) for e in sage.requests]
            assert _tenant("globex").status == 404

    # The state was not spent by any refused attempt: the genuine callback still completes the pairing.
    answer = _post_form(params)
    assert answer.status == 200, answer.body
    assert [(e["region"], e["route"]) for e in sage.requests] == [("us-prod", "code")]
    assert _tenant("globex").json["endpoint"] == sage.base_url("us-prod")


def test_json_callback_endpoint_that_is_not_a_string_is_refused(sage: Emulator, stack: Stack) -> None:
    sage.add_customer(Customer(GLOBEX, ["SEED"], region="us-prod"))
    params = sage.approve(_link("globex", GLOBEX))
    for endpoint in ({"url": params["endpoint"]}, [params["endpoint"]], 1):
        answer = _callback("POST", json_body={**params, "endpoint": endpoint})
        assert answer.status == 400, (endpoint, answer.body)
        assert _is_html(answer)
    assert sage.count("code") == 0
    assert _post_form(params).status == 200


# ---------------------------------------------------------------------------------------------- bad state
def test_missing_state_is_refused_without_an_exchange(sage: Emulator, stack: Stack) -> None:
    params = sage.approve(_link("acme"))
    answer = _post_form({"authorizationCode": params["authorizationCode"]})
    assert answer.status == 400
    assert _is_html(answer)
    assert sage.count("code") == 0
    assert _tenant("acme").status == 404


def test_unknown_state_is_refused_without_an_exchange(sage: Emulator, stack: Stack) -> None:
    params = sage.approve(_link("acme"))
    forged = base64.urlsafe_b64encode(b"\x00" * 32).decode().rstrip("=")
    answer = _post_form({**params, "state": forged})
    assert answer.status == 400
    assert _is_html(answer)
    assert sage.count("code") == 0
    # the genuine state is untouched by the forged one
    assert _post_form(params).status == 200


def test_expired_state_is_refused_without_an_exchange(sage: Emulator, stack: Stack) -> None:
    params = sage.approve(_link("acme"))
    boto3.client("dynamodb").update_item(
        TableName=stack.refs["PairingStatesTable"],
        Key=_state_item_key(params["state"]),
        UpdateExpression="SET expires_epoch = :past",
        ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 5)}},
    )

    answer = _post_form(params)

    assert answer.status == 400
    assert _page_message(answer) == FAILURE_SENTENCES["invalid_state"]
    assert "expired" in answer.body.lower()
    assert sage.count("code") == 0
    assert _tenant("acme").status == 404
    assert _post_form(params).status == 400
    assert sage.count("code") == 0


@pytest.mark.parametrize("code", [None, "", "   "], ids=["absent", "empty", "blank"])
def test_missing_code_is_refused_and_keeps_the_state(sage: Emulator, stack: Stack, code: str | None) -> None:
    params = sage.approve(_link("acme"))
    without = {"state": params["state"]} if code is None else {"state": params["state"], "code": code}

    answer = _post_form(without)

    assert answer.status == 400
    assert _is_html(answer)
    assert sage.count("code") == 0
    assert _post_form(params).status == 200


def test_empty_callback_is_refused(sage: Emulator, stack: Stack) -> None:
    for answer in (_callback("GET"), _callback("POST", body="", headers=FORM)):
        assert answer.status == 400
        assert _is_html(answer)
    assert sage.requests == []


# ---------------------------------------------------------------------------------------------- refusal
def test_customer_refusal_is_a_400_and_spends_the_state(sage: Emulator, stack: Stack) -> None:
    link = _link("acme")
    refusal = sage.reject(link)
    assert refusal["error"]

    answer = _post_form(refusal)

    assert answer.status == 400
    assert _page_message(answer) == FAILURE_SENTENCES["authorisation_denied"]
    assert refusal["error_description"] not in answer.body  # Sage's own words go to the log only
    assert sage.count("code") == 0
    assert _tenant("acme").status == 404

    # A code later issued for the same state is no longer accepted: the refusal consumed it.
    late = sage.approve(link)
    assert late["state"] == refusal["state"]
    assert _post_form(late).status == 400
    assert sage.count("code") == 0


def test_error_callback_in_the_query_string_is_a_refusal(sage: Emulator, stack: Stack) -> None:
    link = _link("acme")
    state = sage.approve(link)["state"]
    answer = _callback("GET", query={"state": state, "error": "access_denied", "statusCode": "403"})
    assert answer.status == 400
    assert _page_message(answer) == FAILURE_SENTENCES["authorisation_denied"]
    assert "access_denied" not in answer.body
    assert sage.count("code") == 0


def test_hostile_error_description_is_never_shown(sage: Emulator, stack: Stack) -> None:
    state = sage.approve(_link("acme"))["state"]
    hostile = "<script>alert('x')</script>"
    answer = _post_form({"state": state, "error": "access_denied", "error_description": hostile})
    assert answer.status == 400
    assert _page_message(answer) == FAILURE_SENTENCES["authorisation_denied"]
    assert "<script>" not in answer.body
    assert "alert(" not in answer.body


def test_sages_words_go_to_the_log_only_at_debug_and_scrubbed(
    sage: Emulator, stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    params = sage.approve(_link("acme"))
    said = f"The user said no to {params['authorizationCode']}"
    _log_debug(caplog)

    answer = _post_form({"state": params["state"], "error": "access_denied", "error_description": said})

    assert _page_message(answer) == FAILURE_SENTENCES["authorisation_denied"]
    assert "said no" not in answer.body
    told = [record for record in caplog.records if "said no" in repr(record.__dict__)]
    assert told and {record.levelno for record in told} == {logging.DEBUG}
    assert all(params["authorizationCode"] not in repr(record.__dict__) for record in caplog.records)
    assert any("The user said no to [redacted]" in repr(record.__dict__) for record in told)


def test_hostile_folder_names_from_sage_are_escaped(sage: Emulator, stack: Stack) -> None:
    sage.add_customer(Customer(ACME, ["<img/src=x/onerror=alert(1)>", "SEED"]))
    answer = _post_form(sage.approve(_link("acme")))
    assert answer.status == 200, answer.body
    assert "<img" not in answer.body
    assert _page_folders(answer.body) == ["&lt;img/src=x/onerror=alert(1)&gt;", "SEED"]
    assert _tenant("acme").json["folders"] == ["<img/src=x/onerror=alert(1)>", "SEED"]


# ---------------------------------------------------------------------------------------------- once only
def test_replayed_callback_never_exchanges_twice(sage: Emulator, stack: Stack) -> None:
    params = sage.approve(_link("acme"))
    first = _post_form(params)
    assert first.status == 200
    stored = boto3.client("dynamodb").get_item(
        TableName=stack.refs["PairingsTable"], Key={"tenant": {"S": "acme"}}
    )["Item"]

    for replay in (_post_form(params), _callback("GET", query=params)):
        assert replay.status == 400 or replay.body == first.body
        assert _is_html(replay)

    assert sage.count("code") == 1
    again = boto3.client("dynamodb").get_item(
        TableName=stack.refs["PairingsTable"], Key={"tenant": {"S": "acme"}}
    )["Item"]
    assert again == stored
    assert _tenant("acme").json["status"] == "active"


def test_concurrent_deliveries_exchange_once(
    sage: Emulator, stack: Stack, atomic_moto_dynamodb: None
) -> None:
    params = sage.approve(_link("acme"))
    deliveries = 10
    barrier = threading.Barrier(deliveries)
    answers: list[Answer] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def deliver() -> None:
        try:
            barrier.wait(timeout=10)
            answer = _post_form(params)
        except BaseException as exc:  # reported below, not swallowed
            with lock:
                failures.append(exc)
            return
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=deliver) for _ in range(deliveries)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert failures == []
    assert len(answers) == deliveries
    statuses = sorted(answer.status for answer in answers)
    assert statuses.count(200) == 1, statuses
    assert set(statuses) <= {200, 400}, statuses
    assert sage.count("code") == 1
    assert _tenant("acme").json["status"] == "active"


# ---------------------------------------------------------------------------------------------- Sage says no
@pytest.mark.parametrize(
    ("fault", "status"),
    [({"status": 403}, 403), ({"status": 404}, 404), ({"status": 500}, 500), ({"status": 429}, 429)],
    ids=["403", "404", "500", "429"],
)
def test_sage_refusing_the_exchange_is_a_502_page(
    sage: Emulator, stack: Stack, fault: dict[str, Any], status: int
) -> None:
    params = sage.approve(_link("acme"))
    sage.fail_next("code", **fault)

    answer = _post_form(params)

    assert answer.status == 502, answer.body
    assert _page_message(answer) == FAILURE_SENTENCES["exchange_refused"]
    assert sage.count("code") == 1
    assert _tenant("acme").status == 404


def test_expired_code_is_a_502_page(sage: Emulator, stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    sage.configure(code_lifetime=0)
    params = sage.approve(_link("acme"))
    _log_debug(caplog)

    answer = _post_form(params)

    assert answer.status == 502
    assert _page_message(answer) == FAILURE_SENTENCES["exchange_refused"]
    assert "The request has expired." not in answer.body  # Sage's message: in the log, at DEBUG, only
    told = [record for record in caplog.records if "The request has expired." in repr(record.__dict__)]
    assert told and {record.levelno for record in told} == {logging.DEBUG}
    assert sage.count("code") == 1
    assert _tenant("acme").status == 404


def test_code_for_another_region_is_refused_by_sage_as_a_502(sage: Emulator, stack: Stack) -> None:
    sage.add_customer(Customer(GLOBEX, ["SEED"], region="us-prod"))
    params = sage.approve(_link("globex", GLOBEX))
    del params["endpoint"]  # a callback that lost its endpoint goes to the configured gateway

    answer = _post_form(params)

    assert answer.status == 502
    assert [e["region"] for e in _exchanges(sage)] == ["eu-prod"]
    assert _tenant("globex").status == 404


# ---------------------------------------------------------------------------------------------- redirect
def test_configured_success_url_answers_303(
    sage: Emulator, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAIRING_SUCCESS_URL", "https://app.example/paired?ok=1")
    wiring.reset()
    params = sage.approve(_link("acme"), folders=["X3"])

    answer = _post_form(params)

    assert answer.status == 303
    assert answer.headers["location"] == "https://app.example/paired?ok=1"
    assert _tenant("acme").json["folders"] == ["X3"]


def test_success_url_is_not_used_for_failures(
    sage: Emulator, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAIRING_SUCCESS_URL", "https://app.example/paired")
    wiring.reset()
    refusal = sage.reject(_link("acme"))
    answer = _post_form(refusal)
    assert answer.status == 400
    assert "location" not in answer.headers


# ---------------------------------------------------------------------------------------------- re-pairing
def test_pairing_again_keeps_the_old_tokens_until_the_new_callback_succeeds(
    sage: Emulator, stack: Stack
) -> None:
    assert _post_form(sage.approve(_link("acme"), folders=["SEED"])).status == 200
    assert call("GET", "/tenants/acme/folders").status == 200
    (first_token,) = _access_tokens_used(sage)
    paired_at = _tenant("acme").json["paired_at"]

    # A new pairing is started, then refused by the customer: the old grant keeps serving.
    second_link = _link("acme")
    described = _tenant("acme").json
    assert described["status"] == "active" and described["folders"] == ["SEED"]
    assert _post_form(sage.reject(second_link)).status == 400
    answer = call("GET", "/tenants/acme/folders")
    assert answer.status == 200
    assert [f["name"] for f in answer.json["folders"]] == ["SEED"]

    # Another pairing whose exchange Sage refuses: still the old grant.
    third = sage.approve(_link("acme"), folders=["X3"])
    sage.fail_next("code", status=403)
    assert _post_form(third).status == 502
    assert [f["name"] for f in call("GET", "/tenants/acme/folders").json["folders"]] == ["SEED"]
    assert _access_tokens_used(sage) == [first_token] * 3
    assert _tenant("acme").json["paired_at"] == paired_at

    # A pairing that succeeds replaces the grant.
    assert _post_form(sage.approve(_link("acme"), folders=["X3"])).status == 200
    answer = call("GET", "/tenants/acme/folders")
    assert [f["name"] for f in answer.json["folders"]] == ["X3"]
    assert _access_tokens_used(sage)[-1] != first_token
    assert _tenant("acme").json["folders"] == ["X3"]

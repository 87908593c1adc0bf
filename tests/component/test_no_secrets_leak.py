"""No code, state, token, client secret, SigV4 signature or Authorization header in any log line or answer,
even with Powertools told to log every event (POWERTOOLS_LOGGER_LOG_EVENT=true) and the root logger at DEBUG.

The flows run through the real handlers with Sage X3 emulated over HTTP; every secret the emulator saw or
issued is collected afterwards and looked for in everything the functions wrote or answered: the service's
log stream, stdout and stderr, and every record any logger produced (the AWS SDK's and urllib3's included).
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets as random_secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import Answer, call
from tests.support.keeper import put_credentials, sweep, tune
from tests.support.sage import CLIENT_ID, CLIENT_SECRET, pair, start_browser
from tests.support.sage import callback as deliver_callback
from x3link import wiring
from x3link.sage.callback_params import CallbackParams, parse_callback
from x3link.sage.oauth import ClientCredentials, TokenSet
from x3link.tokens.model import Pairing

SERVICE = "sage-x3-link"
ACME = "https://x3.acme.example"
GLOBEX = "https://x3.globex.example"
INITECH = "https://x3.initech.example"
HOOLI = "https://x3.hooli.example"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
WRONG_SECRET = "a-typo-during-rotation-7f3c9d2e8b1a"
# Logged by the test's own fakes, not by a function: Sage's emulator and moto's AWS see every secret.
INFRASTRUCTURE = ("moto", "werkzeug", "local.", "sagex3_emulator")
IAM_ROUTES = {(route.method, route.pattern) for route in tpl.routes() if route.auth == "AWS_IAM"}
FUNCTIONS = sorted({route.function for route in tpl.routes()} | {"TokenRefreshFunction"})
SIGNATURE = re.compile(r"Signature=[0-9a-f]{64}")


@dataclass
class Captured:
    stream: io.StringIO = field(default_factory=io.StringIO)
    answers: list[Answer] = field(default_factory=list)
    signatures: set[str] = field(default_factory=set)

    def call(self, method: str, path: str, **kwargs: Any) -> Answer:
        """A request as the app sends it: signed with SigV4 (and a session token) on IAM routes."""
        if any(method == m and pattern.match(path) for m, pattern in IAM_ROUTES):
            signature, session_token = random_secrets.token_hex(32), random_secrets.token_urlsafe(48)
            self.signatures |= {signature, session_token}
            kwargs["headers"] = {
                **(kwargs.get("headers") or {}),
                "Authorization": "AWS4-HMAC-SHA256 Credential=AKIATESTING/20261127/us-east-1/execute-api/"
                f"aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature={signature}",
                "X-Amz-Date": "20261127T060000Z",
                "X-Amz-Security-Token": session_token,
            }
        answer = call(method, path, **kwargs)
        self.answers.append(answer)
        return answer


@pytest.fixture
def debug_logs(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[Captured]:
    """Everything the functions log, at DEBUG, with every event offered to the log.

    Powertools reads POWERTOOLS_LOG_LEVEL when a Logger is created and POWERTOOLS_LOGGER_LOG_EVENT when a
    handler is decorated, i.e. when a handler module is first imported, which may have happened in an
    earlier test. So the handlers are imported afresh for this test (the earlier modules come back after
    it), the level is set on the service logger and every child logger directly, and the stream of the
    service's handler (bound to whatever sys.stdout was at import) is pointed at a buffer for the test.
    """
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    for name in [name for name in sys.modules if name.startswith("functions_")]:
        monkeypatch.delitem(sys.modules, name)
    wiring.reset()
    for function in FUNCTIONS:
        tpl.load_handler(function)
    captured = Captured()
    loggers = [logging.getLogger(SERVICE)] + [
        logger
        for name, logger in logging.root.manager.loggerDict.items()
        if name.startswith(f"{SERVICE}.") and isinstance(logger, logging.Logger)
    ]
    levels = [(logger, logger.level) for logger in loggers]
    streams = []
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                streams.append((handler, handler.setStream(captured.stream)))
    caplog.set_level(logging.DEBUG)  # the root logger: whatever any library logs reaches the capture
    caplog.set_level(logging.DEBUG, logger=SERVICE)
    try:
        yield captured
    finally:
        for handler, stream in streams:
            handler.setStream(stream)
        for logger, level in levels:
            logger.setLevel(level)


def _secrets(sage: Emulator, stack: Stack, extra: set[str]) -> set[str]:
    found = {CLIENT_SECRET, WRONG_SECRET} | extra
    for entry in sage.requests:
        body = entry["json"] if isinstance(entry["json"], dict) else {}
        for name in ("code", "refresh_token", "client_secret", "access_token"):
            if isinstance(body.get(name), str):
                found.add(body[name])
        for name, value in entry["headers"].items():
            if name.lower() == "authorization":
                found.add(value)
                found.add(value.partition(" ")[2])
    for customer in (ACME, GLOBEX, INITECH, HOOLI):
        token = sage.current_refresh_token(customer)
        if token:
            found.add(token)
    items = boto3.client("dynamodb").scan(TableName=stack.refs["PairingsTable"])["Items"]
    store = wiring.token_store()
    for item in items:
        pairing = store.get(item["tenant"]["S"]) if "sealed_tokens" in item else None
        if pairing is not None:  # the tokens it holds sealed, opened as the functions open them
            opened = store.open(pairing)
            found |= {opened.access_token or "", opened.refresh_token or ""}
    # A token cut short (e.g. a message quoting its first characters) must not show either: look for each
    # JWT's payload and signature on their own as well.
    for value in list(found):
        for part in value.split("."):
            if len(part) >= 16 and not part.startswith("eyJhbGciOi"):
                found.add(part)
    found.discard("")
    return found


def _from_a_function(record: logging.LogRecord) -> bool:
    return not record.name.startswith(INFRASTRUCTURE)


def _everything_written(
    captured: Captured, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> str:
    out, err = capsys.readouterr()
    records = []
    for record in filter(_from_a_function, caplog.records):
        records.append(record.getMessage())
        records.append(repr(record.__dict__))
        if record.exc_info:
            records.append(logging.Formatter().formatException(record.exc_info))
    answers = [f"{a.status} {a.headers!r} {a.body}" for a in captured.answers]
    return "\n".join([captured.stream.getvalue(), out, err, *records, *answers])


def test_no_secret_in_any_output_of_every_flow(
    sage: Emulator,
    stack: Stack,
    debug_logs: Captured,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    c = debug_logs
    codes: set[str] = set()
    sage.configure(refresh_lifetime=3 * 86400)  # every pairing is due at every sweep

    def consent(
        tenant: str, customer: str, *, accept: bool = True, folders: list[str] | None = None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """POST /pairings, the browser opens the link, the customer decides at Sage: the callback's
        parameters, and the browser's Cookie header. Link ids and cookies are secrets too."""
        created = c.call("POST", "/pairings", json_body={"tenant": tenant, "customer": customer})
        link_id = created.json["pairing_url"].rsplit("/pair/", 1)[1]
        opened = c.call("GET", f"/pair/{link_id}")
        assert opened.status == 303, opened.body
        # These two answers hand the link to the app and the state and cookie to the browser: that is their
        # job. Everything else (logs, other answers) must never show them.
        c.answers.remove(created)
        c.answers.remove(opened)
        cookies = dict(header.split(";")[0].split("=", 1) for header in opened.set_cookies)
        codes.add(link_id)
        codes.update(cookies.values())
        url = opened.headers["location"]
        params = sage.approve(url, folders=folders) if accept else sage.reject(url)
        codes.update(value for key, value in params.items() if key in ("authorizationCode", "state"))
        return params, {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}

    # 1. pairing: start, open the link, consent, the callback in each of its shapes (form, JSON, query), the
    # code exchange; a callback from another browser
    assert c.call("POST", "/pairings", json_body={"tenant": "acme"}).status == 400
    params, acme_browser = consent("acme", ACME, folders=["SEED"])
    assert c.call("POST", "/callback", body=urlencode(params), headers=FORM).status == 400  # no cookie
    assert c.call("POST", "/callback", body=urlencode(params), headers={**FORM, **acme_browser}).status == 200
    as_json, browser = consent("hooli", HOOLI)
    assert c.call("POST", "/callback", json_body=as_json, headers=browser).status == 200
    in_query, browser = consent("initech", INITECH)
    assert c.call("GET", "/callback", query=in_query, headers=browser).status == 200
    # the same callback replayed (the success page again), as a GET, and from another browser
    assert c.call("POST", "/callback", body=urlencode(params), headers={**FORM, **acme_browser}).status == 200
    assert c.call("GET", "/callback", query=params, headers=acme_browser).status == 200
    assert c.call("GET", "/callback", query=params).status == 400
    # the link opened again
    assert c.call("GET", "/pair/" + "A" * 43).status == 404

    # 2. folder queries: plain, after a 401 (refresh and retry), with a token close to expiry
    assert c.call("GET", "/tenants/acme/folders").status == 200
    sage.invalidate_access_tokens()
    assert c.call("GET", "/tenants/acme/folders").status == 200
    sage.fail_next("folders", status=401, count=2)
    assert c.call("GET", "/tenants/acme/folders").status == 502
    sage.fail_next("folders", status=500)
    assert c.call("GET", "/tenants/acme/folders").status == 502
    assert c.call("GET", "/tenants/acme").status == 200

    # 3. exchange refusals: Sage says no, and an expired code
    refused, browser = consent("globex", GLOBEX)
    sage.fail_next("code", status=403)
    assert c.call("POST", "/callback", json_body=refused, headers=browser).status == 502
    sage.configure(code_lifetime=0)
    expired, browser = consent("globex", GLOBEX)
    assert c.call("GET", "/callback", query=expired, headers=browser).status == 502
    sage.configure(code_lifetime=600)

    # 4. callbacks refused before any exchange: off-list endpoint, unknown state, customer refusal, and a
    # refusal whose description quotes a code and a state (it is logged, scrubbed, at DEBUG only)
    offlist, browser = consent("globex", GLOBEX)
    bad = {**offlist, "endpoint": "https://evil.example/v1"}
    assert c.call("POST", "/callback", body=urlencode(bad), headers={**FORM, **browser}).status == 400
    assert (
        c.call("POST", "/callback", json_body={**offlist, "state": "unknown"}, headers=browser).status == 400
    )
    rejected, browser = consent("globex", GLOBEX, accept=False)
    assert c.call("POST", "/callback", body=urlencode(rejected), headers={**FORM, **browser}).status == 400
    quoting, browser = consent("globex", GLOBEX)
    hostile = {
        "state": quoting["state"],
        "error": f"access_denied {quoting['authorizationCode']}",
        "error_description": f"code {quoting['authorizationCode']} for state {quoting['state']}",
    }
    assert c.call("POST", "/callback", body=urlencode(hostile), headers={**FORM, **browser}).status == 400

    # 5. the keep-alive sweep refreshes every pairing
    summary = sweep()
    assert summary["refreshed"] == 3, summary

    # 6. a refused grant: the pairing is suspended with Sage's (scrubbed) refusal; an operator retries it,
    # and retries a healthy pairing
    sage.revoke(ACME)
    assert c.call("GET", "/tenants/acme/folders").status == 409
    assert c.call("GET", "/tenants/acme").json["status"] == "suspended"
    assert c.call("POST", "/tenants/acme/refresh").status == 409
    assert c.call("POST", "/tenants/hooli/refresh").status == 200

    # 7. Sage refuses the app itself: a wrong client secret during a rotation, met by a query and a sweep
    tune(credentials_recheck_seconds=0)
    put_credentials(stack, client_secret=WRONG_SECRET)
    wiring.credentials_source().reload()
    sage.invalidate_access_tokens()
    assert c.call("GET", "/tenants/initech/folders").status == 503
    assert sweep()["refreshed"] == 0
    assert c.call("POST", "/tenants/initech/refresh").status == 503
    put_credentials(stack)
    wiring.credentials_source().reload()

    # 8. a data delivery notification: its details read after a 401 (refresh and retry), sent again, unsigned
    sage.invalidate_access_tokens()
    sent = sage.notify(HOOLI, "SEED", send=False)
    assert sent.signature is not None
    signed = {"Content-Type": "application/json", "HMAC_SHA256": sent.signature}
    assert c.call("POST", "/notifications", body=sent.body, headers=signed).status == 200
    assert c.call("POST", "/notifications", body=sent.body, headers=signed).status == 200
    assert c.call("POST", "/notifications", body=sent.body).status == 401
    assert sage.count("notification") == 2

    # 9. a second tenant paired and deleted
    pair(sage, "other", "https://x3.other.example")
    secrets = _secrets(sage, stack, codes | c.signatures)
    assert c.call("DELETE", "/tenants/other").status == 204

    written = _everything_written(c, caplog, capsys)

    # The capture works: INFO and DEBUG lines of the functions are in it, events were offered to the log,
    # and the root logger took DEBUG records from libraries as well.
    assert "Pairing completed" in written
    assert any(r.levelno == logging.DEBUG and r.name.startswith(SERVICE) for r in caplog.records)
    assert "Sage X3 token call answered" in c.stream.getvalue()
    assert "Sage X3 refused the code exchange" in c.stream.getvalue()
    assert logging.getLogger().getEffectiveLevel() == logging.DEBUG
    assert any(r.levelno == logging.DEBUG and not r.name.startswith(SERVICE) for r in caplog.records)
    # Enough secrets were collected for the check to mean something.
    assert {CLIENT_SECRET, WRONG_SECRET} <= secrets
    assert codes <= secrets
    assert len(c.signatures) >= 2 * 10  # every IAM route, signed
    assert sum(1 for s in secrets if s.startswith("eyJ")) >= 10  # access and refresh tokens

    leaked = sorted(secret for secret in secrets if secret in written)
    assert leaked == []
    assert "Bearer " not in written
    assert "AWS4-HMAC-SHA256" not in written
    assert SIGNATURE.search(written) is None
    assert CLIENT_ID  # the id is public: only the secret matters


def test_a_request_is_never_logged_with_an_earlier_requests_tenant(
    sage: Emulator, stack: Stack, debug_logs: Captured
) -> None:
    pair(sage, "acme", ACME)  # the callback appends tenant=acme to its log lines
    assert call("GET", "/callback").status == 400
    lines = [json.loads(line) for line in debug_logs.stream.getvalue().splitlines() if line.startswith("{")]
    assert any(line.get("tenant") == "acme" for line in lines)
    refused = [line for line in lines if line.get("message") == "Page refused"]
    assert refused and all("tenant" not in line for line in refused), refused


def test_reprs_hide_tokens(sage: Emulator, stack: Stack) -> None:
    tokens = TokenSet(
        access_token="ACCESS-SECRET-1",
        refresh_token="REFRESH-SECRET-2",
        scope="api.dataDelivery folder.SEED",
        access_token_expires_at=1.0,
        refresh_token_expires_at=2.0,
    )
    pairing = Pairing(
        tenant="acme",
        customer=ACME,
        endpoint="https://api.eu-prod-sagex3.com/v1",
        scope="api.dataDelivery",
        status="active",
        version=1,
        access_token="ACCESS-SECRET-1",
        refresh_token="REFRESH-SECRET-2",
    )
    callback = CallbackParams(state="state-value", code="CODE-SECRET-3")
    credentials = ClientCredentials(client_id=CLIENT_ID, client_secret="CLIENT-SECRET-4")
    for value in (tokens, pairing, callback, credentials):
        text = repr(value) + str(value) + f"{value}" + f"{value!r}"
        for secret in ("ACCESS-SECRET-1", "REFRESH-SECRET-2", "CODE-SECRET-3", "CLIENT-SECRET-4"):
            assert secret not in text, (type(value).__name__, secret)
    assert "acme" in repr(pairing)
    assert CLIENT_ID in repr(credentials)

    # The objects the layer really builds, from real tokens
    browser = start_browser("acme", ACME)
    params = sage.approve(browser.authorise_url)
    parsed = parse_callback({"queryStringParameters": params})
    assert params["authorizationCode"] not in repr(parsed)
    assert deliver_callback(params, browser).status == 200
    read = wiring.token_store().get("acme")
    assert read is not None and read.sealed_tokens
    assert not any(token in repr(read) for token in (read.sealed_tokens.hex(), repr(read.sealed_tokens)))
    stored = wiring.token_store().open(read)
    assert stored.access_token and stored.refresh_token
    assert stored.access_token not in repr(stored)
    assert stored.refresh_token not in repr(stored)
    loaded = wiring.client_credentials()
    assert loaded.client_secret == CLIENT_SECRET
    assert CLIENT_SECRET not in repr(loaded)

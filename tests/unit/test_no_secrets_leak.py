"""No code, token, client secret or Authorization header in any log line or answer, even at DEBUG.

The flows run through the real handlers with Sage X3 emulated over HTTP; every secret the emulator saw or
issued is collected afterwards and looked for in everything the functions wrote or answered.
"""

from __future__ import annotations

import io
import logging
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
from tests.support.sage import CLIENT_ID, CLIENT_SECRET, pair, start_pairing
from x3link import wiring
from x3link.callback_params import CallbackParams, parse_callback
from x3link.oauth import ClientCredentials, TokenSet
from x3link.token_store import Pairing

SERVICE = "sage-x3-link"
ACME = "https://x3.acme.example"
GLOBEX = "https://x3.globex.example"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
API_FUNCTIONS = ("PairingStartFunction", "CallbackFunction", "TenantsFunction", "FoldersFunction")


@dataclass
class Captured:
    stream: io.StringIO = field(default_factory=io.StringIO)
    answers: list[Answer] = field(default_factory=list)

    def call(self, method: str, path: str, **kwargs: Any) -> Answer:
        answer = call(method, path, **kwargs)
        self.answers.append(answer)
        return answer


@pytest.fixture
def debug_logs(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[Captured]:
    """Everything the functions log, at DEBUG.

    Powertools reads POWERTOOLS_LOG_LEVEL when a Logger is created, i.e. when a handler or layer module is
    first imported, which may have happened in an earlier test. So the level is set on the service logger
    and every child logger directly, and the stream of the service's handler (bound to whatever sys.stdout
    was at import) is pointed at a buffer for the test.
    """
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    wiring.reset()
    for function in API_FUNCTIONS:
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
    caplog.set_level(logging.DEBUG, logger=SERVICE)
    try:
        yield captured
    finally:
        for handler, stream in streams:
            handler.setStream(stream)
        for logger, level in levels:
            logger.setLevel(level)


def _secrets(sage: Emulator, stack: Stack, extra: set[str]) -> set[str]:
    found = {CLIENT_SECRET} | extra
    for entry in sage.requests:
        body = entry["json"] if isinstance(entry["json"], dict) else {}
        for name in ("code", "refresh_token", "client_secret", "access_token"):
            if isinstance(body.get(name), str):
                found.add(body[name])
        for name, value in entry["headers"].items():
            if name.lower() == "authorization":
                found.add(value)
                found.add(value.partition(" ")[2])
    for customer in (ACME, GLOBEX):
        token = sage.current_refresh_token(customer)
        if token:
            found.add(token)
    items = boto3.client("dynamodb").scan(TableName=stack.refs["PairingsTable"])["Items"]
    for item in items:
        for name in ("access_token", "refresh_token"):
            if name in item:
                found.add(item[name]["S"])
    # A token cut short (e.g. a message quoting its first characters) must not show either: look for each
    # JWT's payload and signature on their own as well.
    for value in list(found):
        for part in value.split("."):
            if len(part) >= 16 and not part.startswith("eyJhbGciOi"):
                found.add(part)
    found.discard("")
    return found


def _everything_written(
    captured: Captured, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> str:
    out, err = capsys.readouterr()
    records = []
    for record in caplog.records:
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

    # 1. pairing: start, consent, callback (form), the code exchange
    params = sage.approve(start_pairing("acme", ACME)["authorization_url"], folders=["SEED"])
    codes.add(params["authorizationCode"])
    assert c.call("POST", "/callback", body=urlencode(params), headers=FORM).status == 200
    # the same callback replayed, and as a GET carrying the code in the query string
    assert c.call("POST", "/callback", body=urlencode(params), headers=FORM).status == 400
    assert c.call("GET", "/callback", query=params).status == 400

    # 2. folder queries: plain, after a 401 (refresh and retry), with a token close to expiry
    assert c.call("GET", "/tenants/acme/folders").status == 200
    sage.invalidate_access_tokens()
    assert c.call("GET", "/tenants/acme/folders").status == 200
    sage.fail_next("folders", status=401, count=2)
    assert c.call("GET", "/tenants/acme/folders").status == 502
    sage.fail_next("folders", status=500)
    assert c.call("GET", "/tenants/acme/folders").status == 502
    assert c.call("GET", "/tenants/acme").status == 200
    assert sage.count("refresh") == 2

    # 3. exchange refusals: Sage says no, and an expired code
    refused = sage.approve(start_pairing("globex", GLOBEX)["authorization_url"])
    codes.add(refused["authorizationCode"])
    sage.fail_next("code", status=403)
    assert c.call("POST", "/callback", json_body=refused).status == 502
    sage.configure(code_lifetime=0)
    expired = sage.approve(start_pairing("globex", GLOBEX)["authorization_url"])
    codes.add(expired["authorizationCode"])
    assert c.call("GET", "/callback", query=expired).status == 502
    sage.configure(code_lifetime=600)

    # 4. callbacks refused before any exchange: off-list endpoint, unknown state, customer refusal
    offlist = sage.approve(start_pairing("globex", GLOBEX)["authorization_url"])
    codes.add(offlist["authorizationCode"])
    bad = {**offlist, "endpoint": "https://evil.example/v1"}
    assert c.call("POST", "/callback", body=urlencode(bad), headers=FORM).status == 400
    assert c.call("POST", "/callback", json_body={**offlist, "state": "unknown"}).status == 400
    rejected = sage.reject(start_pairing("globex", GLOBEX)["authorization_url"])
    assert c.call("POST", "/callback", body=urlencode(rejected), headers=FORM).status == 400

    # 5. a refused grant: the pairing is suspended with Sage's (scrubbed) refusal; an operator retries it
    sage.revoke(ACME)
    assert c.call("GET", "/tenants/acme/folders").status == 409
    assert c.call("GET", "/tenants/acme").json["status"] == "suspended"
    assert c.call("POST", "/tenants/acme/refresh").status == 409

    # 6. a second tenant paired and deleted
    pair(sage, "other", "https://x3.other.example")
    secrets = _secrets(sage, stack, codes)
    assert c.call("DELETE", "/tenants/other").status == 204

    written = _everything_written(c, caplog, capsys)

    # The capture works: INFO and DEBUG lines of the functions are in it.
    assert "Pairing completed" in written
    assert any(r.levelno == logging.DEBUG and r.name.startswith(SERVICE) for r in caplog.records)
    assert "Sage X3 token call answered" in c.stream.getvalue()
    # Enough secrets were collected for the check to mean something.
    assert CLIENT_SECRET in secrets
    assert codes <= secrets
    assert sum(1 for s in secrets if s.startswith("eyJ")) >= 6  # access and refresh tokens

    leaked = sorted(secret for secret in secrets if secret in written)
    assert leaked == []
    assert "Bearer " not in written
    assert CLIENT_ID  # the id is public: only the secret matters


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
    params = sage.approve(start_pairing("acme", ACME)["authorization_url"])
    parsed = parse_callback({"queryStringParameters": params})
    assert params["authorizationCode"] not in repr(parsed)
    assert call("POST", "/callback", body=urlencode(params), headers=FORM).status == 200
    stored = wiring.token_store().get("acme")
    assert stored is not None and stored.access_token and stored.refresh_token
    assert stored.access_token not in repr(stored)
    assert stored.refresh_token not in repr(stored)
    loaded = wiring.client_credentials()
    assert loaded.client_secret == CLIENT_SECRET
    assert CLIENT_SECRET not in repr(loaded)

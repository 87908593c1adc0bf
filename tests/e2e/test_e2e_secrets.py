"""No code, token, client secret or Authorization header in anything the stack writes (its whole stdout
and stderr, read after it stopped) or answers, and no token in a dump of its tables and queues, after a run
that exercises every path touching them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from local.sagex3_emulator import Emulator
from tests.e2e.conftest import (
    ACCESS_KEY,
    HOST,
    REGION,
    SECRET_KEY,
    Reply,
    RunningStack,
    names,
    stack_with_emulator,
)
from tests.e2e.test_e2e_keep_alive import make_invoke
from tests.support.sage import CLIENT_SECRET

pytestmark = pytest.mark.e2e


def secrets_sent_to_sage(sage: Emulator) -> set[str]:
    """Every code, token and secret the stack sent to Sage X3, read from the emulator's request log."""
    found = {CLIENT_SECRET}
    for entry in sage.requests:
        for source in (entry.get("json") or {}, entry.get("form") or {}):
            for name in ("code", "refresh_token", "client_secret"):
                if isinstance(source.get(name), str):
                    found.add(source[name])
        for name, value in entry["headers"].items():
            if name.lower() == "authorization":
                found.add(value)
                found.add(value.split()[-1])
    return found


def dump_tables_and_queues(stack: RunningStack) -> tuple[str, int]:
    """Every item of every table and every message of every queue of the stack's AWS, as text; and how
    many items there were. Messages are peeked (visible again at once)."""

    def client(service: str) -> Any:
        return boto3.client(
            service,  # type: ignore[call-overload]
            endpoint_url=f"http://{HOST}:{stack.moto_port}",
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    dynamodb, sqs = client("dynamodb"), client("sqs")
    parts: list[str] = []
    items = 0
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                items += 1
                parts.append(repr(item))
                parts += [value["B"].decode("latin-1") for value in item.values() if "B" in value]
    for url in sqs.list_queues().get("QueueUrls", []):
        answer = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageAttributeNames=["All"]
        )
        parts += [repr(message) for message in answer.get("Messages", [])]
    return "\n".join(parts), items


def test_nothing_secret_is_logged_or_answered(tmp_path: Path) -> None:
    answers: list[tuple[set[int], Reply]] = []
    invocations: list[str] = []
    codes: set[str] = set()
    cookies: set[str] = set()  # what binds each browser to its pairing: as secret as the code it guards
    with stack_with_emulator(tmp_path) as (stack, sage):
        stack_under_test: RunningStack = stack
        for index, form in enumerate(("post-form", "post-json", "get-authorizationCode", "get-code")):
            tenant, customer = names(f"secret-{index}")
            browser = stack.start_browser(tenant, customer)
            cookies |= set(browser.cookies.values())
            params = sage.approve(browser.authorise_url, folders=["SEED"])
            codes.add(params["authorizationCode"])
            answers.append(({200}, stack.deliver(params, form, browser=browser)))
            # A reload (the same page, never a second exchange), and the same callback from elsewhere.
            answers.append(({200}, stack.deliver(params, form, browser=browser)))
            answers.append(({400}, stack.deliver(params, form)))
            sage.invalidate_access_tokens(customer)
            answers.append(({200}, stack.call("GET", f"/tenants/{tenant}/folders")))  # 401, refresh, retry
            answers.append(({200}, stack.call("GET", f"/tenants/{tenant}")))
        tenant, customer = names("secret-offlist")
        browser = stack.start_browser(tenant, customer)
        cookies |= set(browser.cookies.values())
        params = sage.approve(browser.authorise_url, folders=["SEED"])
        codes.add(params["authorizationCode"])
        evil = {**params, "endpoint": "https://api.evil-sagex3.com/v1"}
        answers.append(({400}, stack.deliver(evil, browser=browser)))
        sage.fail_next("code", status=403, body={"message": "The request has expired."})
        answers.append(({502}, stack.deliver(params, browser=browser)))  # Sage refuses the exchange: 502 page
        sage.fail_next("folders", status=500)
        answers.append(({502}, stack.call("GET", "/tenants/secret-0/folders")))  # upstream_error
        sage.revoke(names("secret-1")[1])
        sage.invalidate_access_tokens()
        answers.append(({409}, stack.call("GET", "/tenants/secret-1/folders")))  # pairing_expired
        sage.configure(refresh_lifetime=86400)
        stack.pair(*names("secret-due"))
        invoked = make_invoke(stack, "TokenRefreshFunction", "events/scheduled.json")
        assert invoked.returncode == 0, invoked.stderr
        invocations += [invoked.stdout, invoked.stderr]
        secrets = secrets_sent_to_sage(sage) | codes | cookies
        secrets |= {sage.current_refresh_token(names(f"secret-{i}")[1]) or "" for i in range(4)}
        kept, items = dump_tables_and_queues(stack)
    secrets.discard("")

    assert len(cookies) == 5, cookies
    assert len(secrets) > 15, secrets  # codes, cookies, refresh tokens, bearer tokens and the client secret
    stdout, stderr = stack_under_test.stdout, stack_under_test.stderr
    assert stdout is not None and stderr is not None  # the stack ran
    written = {
        "the stack's stdout": stdout.text,
        "the stack's stderr": stderr.text,
        "make invoke's stdout": invocations[0],
        "make invoke's stderr": invocations[1],
    }
    assert stdout.text.count("\n") > 20  # the logs were there to be searched
    for where, text in written.items():
        leaked = [secret[:12] + "..." for secret in secrets if secret in text]
        assert not leaked, f"{where} holds secrets: {leaked}"
    # Each path ran as intended: pairing, a reload, the callback from another browser, refresh on 401,
    # describe (x4), an endpoint off the allow-list, Sage refusing the exchange, Sage failing a folder
    # query, a dead grant.
    statuses = [answer.status for _, answer in answers]
    assert all(answer.status in expected for expected, answer in answers), statuses
    for _, answer in answers:
        leaked = [secret[:12] + "..." for secret in secrets if secret.encode() in answer.body]
        assert not leaked, f"an answer holds secrets: {leaked}\n{answer.body[:500]!r}"
    # Nor does what the stack keeps: a dump of every table and queue holds no token (the contract).
    assert items >= 6 and "sealed_tokens" in kept  # the pairings were there to be searched
    leaked = [secret[:12] + "..." for secret in secrets if secret in kept]
    assert not leaked, f"a dump of the tables and queues holds secrets: {leaked}"

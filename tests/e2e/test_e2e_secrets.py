"""No code, token, client secret or Authorization header in anything the stack writes (its whole stdout
and stderr, read after it stopped) or answers, after a run that exercises every path touching them."""

from __future__ import annotations

from pathlib import Path

import pytest

from local.sagex3_emulator import Emulator
from tests.e2e.conftest import Reply, RunningStack, names, stack_with_emulator
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


def test_nothing_secret_is_logged_or_answered(tmp_path: Path) -> None:
    answers: list[tuple[set[int], Reply]] = []
    invocations: list[str] = []
    codes: set[str] = set()
    with stack_with_emulator(tmp_path) as (stack, sage):
        stack_under_test: RunningStack = stack
        for index, form in enumerate(("post-form", "post-json", "get-authorizationCode", "get-code")):
            tenant, customer = names(f"secret-{index}")
            params = sage.approve(stack.start_pairing(tenant, customer), folders=["SEED"])
            codes.add(params["authorizationCode"])
            answers.append(({200}, stack.deliver(params, form)))
            answers.append(({200, 400}, stack.deliver(params, form)))  # a replay: never a second exchange
            sage.invalidate_access_tokens(customer)
            answers.append(({200}, stack.call("GET", f"/tenants/{tenant}/folders")))  # 401, refresh, retry
            answers.append(({200}, stack.call("GET", f"/tenants/{tenant}")))
        tenant, customer = names("secret-offlist")
        params = sage.approve(stack.start_pairing(tenant, customer), folders=["SEED"])
        codes.add(params["authorizationCode"])
        answers.append(({400}, stack.deliver({**params, "endpoint": "https://api.evil-sagex3.com/v1"})))
        sage.fail_next("code", status=403, body={"message": "The request has expired."})
        answers.append(({502}, stack.deliver(params)))  # Sage refuses the exchange: 502 page
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
        secrets = secrets_sent_to_sage(sage) | codes
        secrets |= {sage.current_refresh_token(names(f"secret-{i}")[1]) or "" for i in range(4)}
    secrets.discard("")

    assert len(secrets) > 10, secrets  # codes, refresh tokens, bearer tokens and the client secret
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
    # Each path ran as intended: pairing, a replay, refresh on 401, describe (x4), an endpoint off the
    # allow-list, Sage refusing the exchange, Sage failing a folder query, a dead grant.
    statuses = [answer.status for _, answer in answers]
    assert all(answer.status in expected for expected, answer in answers), statuses
    for _, answer in answers:
        leaked = [secret[:12] + "..." for secret in secrets if secret.encode() in answer.body]
        assert not leaked, f"an answer holds secrets: {leaked}\n{answer.body[:500]!r}"

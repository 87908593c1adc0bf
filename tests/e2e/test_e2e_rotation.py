"""The client secret rotated the only way the two consoles allow, from outside: regenerated in Sage's App
Registry first, pasted into Secrets Manager a few minutes later. In between Sage refuses every refresh; no
pairing may be suspended, and once the secret is stored every pairing works again on its own refresh token,
with no operator action. The stack is `make run`'s, over real HTTP, with its own Sage X3 emulator.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3

from tests.e2e.conftest import ACCESS_KEY, HOST, REGION, SECRET_KEY, names, stack_with_emulator
from tests.support.sage import CLIENT_ID

NEW_SECRET = "regenerated-in-the-app-registry-e2e-0123456789"
# The functions read the secret again at most every 10 s while a gateway's breaker is open.
RECOVERY_SECONDS = 60


def test_a_secret_regenerated_at_sage_suspends_nothing_and_recovers_once_stored(tmp_path: Path) -> None:
    with stack_with_emulator(tmp_path) as (stack, sage):
        tenants = [names(f"rotated-{n}") for n in range(4)]
        for tenant, customer in tenants:
            stack.pair(tenant, customer, folders=["SEED"])
        before = {tenant: stack.call("GET", f"/tenants/{tenant}").json() for tenant, _ in tenants}

        sage.add_client(CLIENT_ID, NEW_SECRET)  # regenerated in the App Registry...
        sage.invalidate_access_tokens()  # ...and every query now needs a refresh
        for tenant, _ in tenants:
            answer = stack.call("GET", f"/tenants/{tenant}/folders")
            assert (answer.status, answer.json()["error"]) == (503, "app_unavailable"), answer.body
        for tenant, _ in tenants:
            view = stack.call("GET", f"/tenants/{tenant}").json()
            assert view["status"] == "active", view  # held, or behind the gateway's breaker: never suspended

        secrets = boto3.client(
            "secretsmanager",
            endpoint_url=f"http://{HOST}:{stack.moto_port}",
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )
        (secret,) = secrets.list_secrets()["SecretList"]
        secrets.put_secret_value(  # ...and pasted into Secrets Manager
            SecretId=secret["ARN"],
            SecretString=json.dumps({"client_id": CLIENT_ID, "client_secret": NEW_SECRET}),
        )

        deadline = time.monotonic() + RECOVERY_SECONDS
        waiting = {tenant for tenant, _ in tenants}
        while waiting and time.monotonic() < deadline:
            for tenant in sorted(waiting):
                if stack.call("GET", f"/tenants/{tenant}/folders").status == 200:
                    waiting.discard(tenant)
            time.sleep(1)
        assert not waiting, f"still refused a minute after the secret was stored: {sorted(waiting)}"

        for tenant, customer in tenants:
            view = stack.call("GET", f"/tenants/{tenant}").json()
            assert view["status"] == "active"
            assert view["paired_at"] == before[tenant]["paired_at"]  # the same grant, never re-paired
            assert sage.current_refresh_token(customer) is not None

"""`x3link`, the operator's CLI, run as a subprocess (`.venv/bin/x3link`, as `make venv` installs it)
against a stack started as `make run` starts it, found through its stack file (`LOCAL_STACK_FILE`) with
no flag, as an operator finds `make run`'s. Sage X3 is an emulator of this process, so each test can see
what reached it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from local.sagex3_emulator import Emulator
from tests.e2e.conftest import RunningStack, names, subprocess_env

pytestmark = pytest.mark.e2e

X3LINK = Path(sys.executable).parent / "x3link"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def x3link(
    stack: RunningStack, *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """The console script, with the developer's environment but no AWS variables (the stack file signs),
    `env` added; standard input closed, as in a script."""
    assert X3LINK.exists(), f"{X3LINK} is missing: `make venv` installs it (pip install --editable .)"
    environment = subprocess_env(**{"LOCAL_STACK_FILE": str(stack.stack_file), **env})
    return subprocess.run(
        [str(X3LINK), *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


def succeeds(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def fails(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The one line of stderr of a command that failed with `code`, and printed nothing to stdout."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def pair_with_cli(stack: RunningStack, sage: Emulator, tenant: str, customer: str) -> None:
    """`x3link pair`, then the administrator's browser opens the printed link and consents at Sage X3."""
    link = succeeds(x3link(stack, "pair", tenant, customer)).strip()
    assert link.startswith(f"{stack.api_url}/pair/") and "\n" not in link
    browser = stack.open_link(link)
    page = stack.deliver(sage.approve(browser.authorise_url, folders=["SEED"]), browser=browser)
    assert page.status == 200, page.body


def test_pair_then_show_and_list(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("cli-pair")
    pair_with_cli(stack, sage, tenant, customer)

    shown = json.loads(succeeds(x3link(stack, "tenants", "show", tenant, "--json")))
    assert shown == stack.call("GET", f"/tenants/{tenant}").json()
    assert (shown["status"], shown["folders"], shown["customer"]) == ("active", ["SEED"], customer)
    table = succeeds(x3link(stack, "tenants", "show", tenant))
    assert re.search(r"^\s*status\s+active\s*$", table, re.M), table
    assert re.search(rf"^\s*customer\s+{re.escape(customer)}\s*$", table, re.M), table

    listed = json.loads(succeeds(x3link(stack, "tenants", "--json")))
    assert tenant in [pairing["tenant"] for pairing in listed["tenants"]]
    rows = succeeds(x3link(stack, "tenants", "--status", "active"))
    assert re.search(rf"^\s*{re.escape(tenant)}\s+{re.escape(customer)}\s+active\s+SEED\s", rows, re.M), rows
    expired = x3link(stack, "tenants", "--status", "expired")
    assert tenant not in succeeds(expired)


def test_refresh_and_folders(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("cli-refresh")
    stack.pair(tenant, customer, folders=["SEED"])
    sage.clear_requests()

    refreshed = x3link(stack, "tenants", "refresh", tenant)

    assert re.search(r"^\s*status\s+active\s*$", succeeds(refreshed), re.M), refreshed.stdout
    assert refreshed.stderr.strip() == f"Refreshed {tenant}: active."
    assert sage.count("refresh") == 1
    assert re.search(r"^\s*SEED\s*$", succeeds(x3link(stack, "folders", tenant)), re.M)
    as_json = json.loads(succeeds(x3link(stack, "folders", tenant, "--json")))
    assert [folder["name"] for folder in as_json["folders"]] == ["SEED"]


def test_files_are_listed_downloaded_and_deleted(stack: RunningStack, sage: Emulator, tmp_path: Path) -> None:
    tenant, customer = names("cli-files")
    stack.pair(tenant, customer, folders=["SEED"])
    content = b"order;qty\n" + b"SO1;3\n" * 50_000  # several chunks of the progress bar
    sage.put_delivery_file(customer, "SEED", "orders 2026.csv", content)
    sage.put_delivery_file(customer, "SEED", "stock.csv", b"item;qty\n")

    listing = succeeds(x3link(stack, "files", "list", tenant, "SEED"))
    assert re.search(r"^\s*orders 2026\.csv\s+\S+ KiB\s", listing, re.M), listing
    assert re.search(r"^\s*stock\.csv\s+9 B\s", listing, re.M), listing
    as_json = json.loads(succeeds(x3link(stack, "files", "list", tenant, "SEED", "--json")))
    assert sorted(item["name"] for item in as_json["files"]) == ["orders 2026.csv", "stock.csv"]

    saved = succeeds(
        x3link(stack, "files", "download", tenant, "SEED", "orders 2026.csv", "-o", str(tmp_path))
    )
    assert saved.strip() == str(tmp_path / "orders 2026.csv")
    assert (tmp_path / "orders 2026.csv").read_bytes() == content
    # The default destination is the current directory; an existing file is kept unless --force.
    again = x3link(stack, "files", "download", tenant, "SEED", "orders 2026.csv", cwd=tmp_path)
    assert (
        fails(again) == "Error: orders 2026.csv already exists: say --force to replace it, or -o elsewhere."
    )
    succeeds(x3link(stack, "files", "download", tenant, "SEED", "stock.csv", cwd=tmp_path))
    assert (tmp_path / "stock.csv").read_bytes() == b"item;qty\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["orders 2026.csv", "stock.csv"]

    unasked = x3link(stack, "files", "delete", tenant, "SEED", "stock.csv")
    assert unasked.returncode == 1 and "Aborted!" in unasked.stderr
    assert "stock.csv" in sage.delivery_files(customer, "SEED")
    succeeds(x3link(stack, "files", "delete", tenant, "SEED", "stock.csv", "--yes"))
    assert list(sage.delivery_files(customer, "SEED")) == ["orders 2026.csv"]
    gone = x3link(stack, "files", "download", tenant, "SEED", "stock.csv", "-o", str(tmp_path / "x.csv"))
    assert fails(gone) == "Error: Sage X3 has no such file in this folder."


def test_a_file_is_uploaded_and_tracked(stack: RunningStack, sage: Emulator, tmp_path: Path) -> None:
    tenant, customer = names("cli-upload")
    stack.pair(tenant, customer, folders=["SEED"])
    source = tmp_path / "prices.csv"
    source.write_bytes(b"item;price\n" + b"IT001;12.50\n" * 40_000)

    sent = x3link(stack, "upload", tenant, "SEED", str(source), "--name", "prices-2026.csv")

    tracking_id = succeeds(sent).strip()
    assert UUID.match(tracking_id), sent.stdout
    assert sage.ingested(customer, "SEED") == {"prices-2026.csv": source.read_bytes()}
    tracked = json.loads(succeeds(x3link(stack, "uploads", "show", tenant, tracking_id, "--json")))
    assert (tracked["tracking_id"], tracked["filename"], tracked["folder"]) == (
        tracking_id,
        "prices-2026.csv",
        "SEED",
    )
    assert tracked["status"] != "awaiting_upload"
    table = succeeds(x3link(stack, "uploads", "show", tenant, tracking_id))
    assert re.search(r"^\s*filename\s+prices-2026\.csv\s*$", table, re.M), table
    # Sage refusing: the same name again is its 409 file_exists, said as the API's own sentence.
    refused = x3link(stack, "upload", tenant, "SEED", str(source), "--name", "prices-2026.csv")
    expected = stack.call(
        "POST", f"/tenants/{tenant}/folders/SEED/uploads", json_body={"filename": "prices-2026.csv"}
    )
    assert expected.status == 409, expected.body
    assert fails(refused) == f"Error: {expected.json()['message']}"


def test_delete_forgets_the_pairing(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("cli-delete")
    stack.pair(tenant, customer, folders=["SEED"])

    unasked = x3link(stack, "tenants", "delete", tenant)
    assert unasked.returncode == 1 and "Aborted!" in unasked.stderr
    assert stack.call("GET", f"/tenants/{tenant}").status == 200

    deleted = x3link(stack, "tenants", "delete", tenant, "--yes")

    assert succeeds(deleted) == "" and deleted.stderr.strip() == f"Deleted the pairing of {tenant}."
    assert stack.call("GET", f"/tenants/{tenant}").status == 404


# --- errors: one sentence on stderr, exit 1; usage errors exit 2 ------------------------------------


def test_an_unknown_tenant(stack: RunningStack) -> None:
    for args in (("tenants", "show", "nobody"), ("tenants", "refresh", "nobody"), ("folders", "nobody")):
        assert fails(x3link(stack, *args)) == "Error: Tenant 'nobody' is not paired."


def test_a_folder_the_customer_did_not_grant(stack: RunningStack, sage: Emulator) -> None:
    tenant, customer = names("cli-grant")
    stack.pair(tenant, customer, folders=["SEED"])
    expected = stack.call("GET", f"/tenants/{tenant}/folders/DEMO/files")
    assert expected.status == 403, expected.body

    assert fails(x3link(stack, "files", "list", tenant, "DEMO")) == f"Error: {expected.json()['message']}"


def test_no_running_stack(stack: RunningStack, tmp_path: Path) -> None:
    missing = tmp_path / "stack.json"
    result = x3link(stack, "tenants", LOCAL_STACK_FILE=str(missing))
    assert fails(result) == (
        f"Error: `make run` is not running (no {missing}): start it, or say --stack NAME or --url URL."
    )
    # A file left by a `make run` that is gone (its pid no longer runs) is not a running stack.
    stale = json.loads(stack.stack_file.read_text(encoding="utf-8"))
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale["pid"] = int(finished.stdout)
    left = tmp_path / "left.json"
    left.write_text(json.dumps(stale), encoding="utf-8")
    assert fails(x3link(stack, "tenants", LOCAL_STACK_FILE=str(left))) == (
        f"Error: `make run` is not running (the one that wrote {left} has exited): start it again."
    )


@pytest.mark.parametrize(
    ("access_key", "error_type"),
    [("testing", "InvalidSignatureException"), ("AKIAUNKNOWN", "UnrecognizedClientException")],
)
def test_wrong_credentials(stack: RunningStack, access_key: str, error_type: str) -> None:
    result = x3link(
        stack,
        "--url",
        stack.api_url,
        "tenants",
        AWS_ACCESS_KEY_ID=access_key,
        AWS_SECRET_ACCESS_KEY="not-the-secret",
        AWS_REGION="us-east-1",
    )
    assert fails(result) == (
        "Error: The API refused the request's signature: check the AWS credentials (profile, role or "
        f"environment) and the region it was signed with ({error_type})."
    )


def test_the_callers_own_credentials_sign_with_url(stack: RunningStack) -> None:
    """--url signs with the AWS CLI's chain: here the environment's keys, which the local gateway knows."""
    result = x3link(
        stack,
        "--url",
        stack.api_url,
        "--region",
        "us-east-1",
        "tenants",
        "--json",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    assert isinstance(json.loads(succeeds(result))["tenants"], list)


def test_an_api_that_does_not_answer(stack: RunningStack) -> None:
    result = x3link(
        stack,
        "--url",
        "http://127.0.0.1:9",
        "--region",
        "us-east-1",
        "tenants",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
    )
    assert fails(result).startswith("Error: Could not reach 127.0.0.1:9 (")


def test_usage_errors_exit_2(stack: RunningStack) -> None:
    for args in (
        ("tenants", "--status", "paused"),
        ("pair", "only-a-tenant"),
        ("--stack", "s", "--url", "u", "tenants"),
    ):
        result = x3link(stack, *args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
    assert "Exit codes: 0 success; 1 the API" in succeeds(x3link(stack, "--help"))

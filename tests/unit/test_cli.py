"""`x3link`'s pure parts, without a socket: the sentences its errors say, how it finds the API, what its
tables show, how it pages and signs (over a urllib3 pool that answers from a script), and click's usage
errors (exit 2)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import urllib3
from botocore.stub import Stubber
from click.testing import CliRunner
from rich.console import Console

from x3link_cli import locate, render, transfer
from x3link_cli.client import Api, path
from x3link_cli.errors import CliError, api_error, transfer_error, unreachable
from x3link_cli.main import EXIT_CODES, cli

KEYS = locate.Keys("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
TARGET = locate.Target("https://abc123.execute-api.eu-west-1.amazonaws.com/prod", "eu-west-1", KEYS)


def shown(renderable: Any) -> str:
    console = Console(file=io.StringIO(), width=200)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


# --- error sentences ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "body", "sentence"),
    [
        (
            404,
            {},
            {"error": "not_paired", "message": "Tenant 'acme' is not paired."},
            "Tenant 'acme' is not paired.",
        ),
        (
            409,
            {},
            {"error": "file_exists", "message": "Sage X3 already holds it"},
            "Sage X3 already holds it.",
        ),
        (
            409,
            {},
            {"error": "pairing_suspended"},
            "The API refused the request (pairing_suspended, HTTP 409).",
        ),
        (
            403,
            {"x-amzn-errortype": "InvalidSignatureException:http://internal.amazon.com/coral/"},
            {"message": "The request signature we calculated does not match..."},
            "The API refused the request's signature: check the AWS credentials (profile, role or "
            "environment) and the region it was signed with (InvalidSignatureException).",
        ),
        (
            403,
            {"x-amzn-errortype": "AccessDeniedException"},
            {"message": "User: arn:aws:iam::1:user/x is not authorized"},
            "Your AWS identity is not allowed to call this API (execute-api:Invoke is denied to it).",
        ),
        (
            403,
            {"x-amzn-errortype": "MissingAuthenticationTokenException"},
            {"message": "Missing Authentication Token"},
            "The API has no such route: check the URL (an AWS one ends with its stage, as in /prod).",
        ),
        (
            502,
            {},
            {"message": "Internal server error"},
            "The API failed with HTTP 502: Internal server error.",
        ),
        (500, {}, "<html>oops</html>", "The API answered HTTP 500, which the command does not understand."),
    ],
)
def test_api_error_sentences(status: int, headers: dict, body: Any, sentence: str) -> None:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    assert api_error(status, headers, raw) == sentence


def test_a_refused_transfer_says_what_the_link_said() -> None:
    body = b"<Error><Code>InvalidContent</Code><Message>Only text files can be ingested</Message></Error>"
    assert transfer_error(400, body, "upload") == (
        "The upload link refused the transfer with HTTP 400 "
        "(InvalidContent: Only text files can be ingested)."
    )
    assert transfer_error(403, b"", "download") == "The download link refused the transfer with HTTP 403."


def test_an_unreachable_link_is_named_by_its_host_only() -> None:
    """A presigned link's query is its credential: it never reaches a message."""
    url = "https://bucket.s3.amazonaws.com/f.csv?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA"
    sentence = unreachable(url, urllib3.exceptions.NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    assert sentence == (
        "Could not reach bucket.s3.amazonaws.com (NewConnectionError): check that it is running and that the "
        "URL is right."
    )


# --- finding the API ---------------------------------------------------------------------------------


def test_the_stack_file_is_looked_for_from_the_current_directory_then_beside_the_venv(tmp_path: Path) -> None:
    cwd = tmp_path / "checkout" / "docs"
    prefix = tmp_path / "elsewhere" / ".venv"
    found = locate.stack_file_candidates({}, cwd, prefix)
    assert found[0] == cwd / ".local" / "stack.json"
    assert found[1] == cwd.parent / ".local" / "stack.json"
    assert found[-1] == tmp_path / "elsewhere" / ".local" / "stack.json"
    inside = locate.stack_file_candidates({}, tmp_path / "checkout" / "docs", tmp_path / "checkout" / ".venv")
    assert inside[0] == cwd / ".local" / "stack.json"
    assert inside[-1] == tmp_path / "checkout" / ".local" / "stack.json"
    assert inside.count(inside[-1]) == 1
    moved = locate.stack_file_candidates({"LOCAL_STACK_FILE": str(tmp_path / "s.json")}, cwd, prefix)
    assert moved == [tmp_path / "s.json"]


def test_a_missing_or_stale_stack_file_says_make_run_is_not_running(tmp_path: Path) -> None:
    missing = tmp_path / "stack.json"
    with pytest.raises(CliError) as caught:
        locate.read_stack_file([missing])
    assert caught.value.message == (
        f"`make run` is not running (no {missing}): start it, or say --stack NAME or --url URL."
    )
    missing.write_text(json.dumps({"pid": 4242, "api_url": "http://127.0.0.1:3000"}), encoding="utf-8")
    with pytest.raises(CliError) as caught:
        locate.read_stack_file([missing], alive=lambda pid: pid != 4242)
    assert "has exited" in caught.value.message
    assert locate.read_stack_file([missing], alive=lambda pid: True)["api_url"] == "http://127.0.0.1:3000"
    missing.write_text("{", encoding="utf-8")
    with pytest.raises(CliError, match="is not readable JSON"):
        locate.read_stack_file([missing], alive=lambda pid: True)


def test_the_local_stack_signs_with_its_own_keys_else_the_callers() -> None:
    data = {"api_url": "http://127.0.0.1:3000/", "region": "eu-west-3"}
    callers = locate.Keys("AKIACALLER", "secret")
    embedded = locate.local_target(
        {**data, "access_key_id": "testing", "secret_access_key": "t"}, lambda: callers
    )
    assert (embedded.url, embedded.region, embedded.credentials) == (
        "http://127.0.0.1:3000",
        "eu-west-3",
        locate.Keys("testing", "t"),
    )
    assert locate.local_target(data, lambda: callers).credentials == callers


def test_keys_never_show_their_secret() -> None:
    assert "wJalr" not in repr(KEYS) and "wJalr" not in repr(TARGET)


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://abc123.execute-api.eu-west-1.amazonaws.com/prod", "eu-west-1"),
        ("https://abc123.execute-api.cn-north-1.amazonaws.com.cn/prod/", "cn-north-1"),
        ("http://127.0.0.1:3000", None),
        ("https://api.example.com/x3", None),
    ],
)
def test_the_region_of_an_api_gateway_url(url: str, region: str | None) -> None:
    assert locate.region_of_url(url) == region


def test_a_stack_is_found_by_its_api_url_output() -> None:
    client = boto3.client("cloudformation", region_name="eu-west-1")
    with Stubber(client) as stub:
        stub.add_response(
            "describe_stacks",
            {
                "Stacks": [
                    {
                        "StackName": "x3",
                        "CreationTime": "2026-01-01T00:00:00Z",
                        "StackStatus": "CREATE_COMPLETE",
                        "Outputs": [
                            {"OutputKey": "CallbackUrl", "OutputValue": "https://a/prod/callback"},
                            {"OutputKey": "ApiUrl", "OutputValue": TARGET.url},
                        ],
                    }
                ]
            },
            {"StackName": "x3"},
        )
        stub.add_client_error(
            "describe_stacks",
            "ValidationError",
            "Stack with id nope does not exist",
            400,
            {"StackName": "nope"},
        )
        stub.add_client_error("describe_stacks", "AccessDenied", "not authorised", 403, {"StackName": "x3"})
        assert locate.api_url_from_stack(client, "x3", "eu-west-1") == TARGET.url
        with pytest.raises(CliError) as unknown:
            locate.api_url_from_stack(client, "nope", "eu-west-1")
        with pytest.raises(CliError) as denied:
            locate.api_url_from_stack(client, "x3", "eu-west-1")
    assert unknown.value.message == "There is no stack named nope in eu-west-1: check --stack and --region."
    assert denied.value.message == "CloudFormation refused to describe stack x3 (AccessDenied)."
    with pytest.raises(CliError, match="has no ApiUrl output"):
        locate.api_url_from_outputs({"Outputs": []}, "other")


# --- what the commands show --------------------------------------------------------------------------


def test_the_tenants_table() -> None:
    table = shown(
        render.tenants_table(
            [
                {
                    "tenant": "acme",
                    "customer": "https://x3.acme.example",
                    "status": "active",
                    "folders": ["SEED", "DEMO"],
                    "paired_at": "2026-01-01T00:00:00Z",
                    "refreshed_at": None,
                },
                {
                    "tenant": "globex",
                    "customer": "https://x3.globex.example",
                    "status": "suspended",
                    "folders": [],
                    "refreshed_at": "2026-01-02T00:00:00Z",
                    "next_attempt_at": "2026-01-02T00:15:00Z",
                },
            ]
        )
    )
    lines = [line.split() for line in table.splitlines() if line.strip()]
    assert lines[0] == ["TENANT", "CUSTOMER", "STATUS", "FOLDERS", "REFRESHED", "NEXT", "ATTEMPT"]
    assert [
        "acme",
        "https://x3.acme.example",
        "active",
        "SEED,",
        "DEMO",
        "2026-01-01T00:00:00Z",
        "-",
    ] in lines
    assert [
        "globex",
        "https://x3.globex.example",
        "suspended",
        "-",
        "2026-01-02T00:00:00Z",
        "2026-01-02T00:15:00Z",
    ] in lines
    assert (
        render.no_tenants("expired") == "No expired pairings." and render.no_tenants(None) == "No pairings."
    )


def test_a_pairing_shows_its_fields_in_reading_order_then_any_new_ones() -> None:
    pairing = {
        "status": "suspended",
        "tenant": "acme",
        "last_refusal": {"at": "2026-01-02T00:00:00Z", "status": 400, "message": "invalid_grant"},
        "added_later": 3,
    }
    rows = [
        line.split(None, 1)
        for line in shown(render.fields_table(pairing, render.PAIRING_FIELDS)).splitlines()
    ]
    rows = [row for row in rows if len(row) == 2]
    assert [row[0] for row in rows] == ["FIELD", "tenant", "status", "last_refusal", "added_later"]
    assert rows[3][1].strip() == "2026-01-02T00:00:00Z: Sage answered 400, invalid_grant"


@pytest.mark.parametrize(
    ("count", "text"),
    [(9, "9 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (12 * 1024**2, "12.0 MiB"), (None, "-")],
)
def test_sizes_for_people(count: int | None, text: str) -> None:
    assert render.size(count) == text


def test_folders_and_files_tables() -> None:
    folders = shown(render.folders_table({"folders": [{"name": "SEED", "$urls": {}}, {"name": "DEMO"}]}))
    assert [line.strip() for line in folders.splitlines() if line.strip()][-2:] == ["SEED", "DEMO"]
    files = shown(
        render.files_table([{"name": "a b.csv", "size": 2048, "last_modified": "2026-01-01T00:00:00Z"}])
    )
    assert "a b.csv   2.0 KiB   2026-01-01T00:00:00Z" in files


# --- paging and signing, over a pool that answers from a script --------------------------------------


class ScriptedPool(urllib3.PoolManager):
    """Answers each request with the next scripted (status, body); keeps what was sent. No socket."""

    def __init__(self, answers: list[tuple[int, Any]]) -> None:
        super().__init__()
        self.answers = answers
        self.sent: list[tuple[str, str, dict[str, str], bytes | None]] = []

    def request(self, method: str, url: str, body: Any = None, headers: Any = None, **_: Any) -> Any:  # type: ignore[override]
        self.sent.append((method, url, dict(headers or {}), body))
        status, answer = self.answers.pop(0)
        return urllib3.HTTPResponse(body=json.dumps(answer).encode(), status=status, preload_content=True)


def test_a_listing_follows_its_cursors_to_the_last_page() -> None:
    pool = ScriptedPool(
        [
            (200, {"tenants": [{"tenant": "a"}], "cursor": "c1"}),
            (200, {"tenants": [{"tenant": "b"}], "cursor": "c2"}),
            (200, {"tenants": [{"tenant": "c"}]}),
        ]
    )
    listed = Api(TARGET, pool).pages("/tenants", "tenants", {"status": "active"})
    assert [item["tenant"] for item in listed] == ["a", "b", "c"]
    assert [url for _, url, _, _ in pool.sent] == [
        f"{TARGET.url}/tenants?status=active",
        f"{TARGET.url}/tenants?cursor=c1&status=active",
        f"{TARGET.url}/tenants?cursor=c2&status=active",
    ]
    headers = pool.sent[0][2]
    assert (
        headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
        and "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]
    )
    assert "X-Amz-Date" in headers


def test_a_cursor_handed_out_twice_stops_the_listing() -> None:
    pool = ScriptedPool([(200, {"tenants": [], "cursor": "c1"}), (200, {"tenants": [], "cursor": "c1"})])
    with pytest.raises(CliError, match="same cursor twice"):
        Api(TARGET, pool).pages("/tenants", "tenants")


def test_an_answer_outside_the_expected_is_its_sentence() -> None:
    pool = ScriptedPool(
        [(404, {"error": "file_not_found", "message": "Sage X3 has no such file in this folder."})]
    )
    with pytest.raises(CliError) as caught:
        Api(TARGET, pool).call("GET", path("tenants", "acme", "folders", "SEED", "files", "a b/c?.csv"))
    assert caught.value.message == "Sage X3 has no such file in this folder."
    assert caught.value.exit_code == 1
    assert pool.sent[0][1] == f"{TARGET.url}/tenants/acme/folders/SEED/files/a%20b%2Fc%3F.csv"


# --- usage ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["--stack", "s", "--url", "https://u", "tenants"],
        ["tenants", "--status", "paused"],
        ["pair", "only-a-tenant"],
        ["nonsense"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = CliRunner(mix_stderr=False).invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")


def test_help_says_the_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert " ".join(EXIT_CODES.split()) in " ".join(result.output.split())


def test_without_a_running_stack_the_command_fails_with_one_sentence(tmp_path: Path) -> None:
    missing = tmp_path / "stack.json"
    result = CliRunner(mix_stderr=False).invoke(cli, ["tenants"], env={"LOCAL_STACK_FILE": str(missing)})
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: `make run` is not running (no {missing}): start it, or say --stack NAME or --url URL.\n"
    )


# --- transfers, over a pool that answers from a script -----------------------------------------------


class TransferPool(urllib3.PoolManager):
    """Answers one transfer with (status, body, headers); keeps the method, headers and bytes sent."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.answer = (status, body, headers or {})
        self.sent: list[tuple[str, dict[str, str], bytes]] = []

    def request(self, method: str, url: str, body: Any = None, headers: Any = None, **_: Any) -> Any:  # type: ignore[override]
        sent = body if isinstance(body, bytes | None) else b"".join(body)
        self.sent.append((method, dict(headers or {}), sent or b""))
        status, answer, answer_headers = self.answer
        return urllib3.HTTPResponse(
            body=io.BytesIO(answer), status=status, headers=answer_headers, preload_content=False
        )


QUIET = Console(file=io.StringIO())
LINK = "https://bucket.example/f.csv?X-Amz-Signature=abc"


def test_a_download_is_written_whole(tmp_path: Path) -> None:
    content = b"x;y\n" * 200_000
    pool = TransferPool(200, content, {"Content-Length": str(len(content))})
    target = tmp_path / "f.csv"
    assert transfer.download(pool, LINK, target, QUIET) == len(content)
    assert target.read_bytes() == content
    assert pool.sent == [("GET", {}, b"")]  # unsigned: the link is its own credential
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize(
    ("status", "body", "headers", "sentence"),
    [
        (
            403,
            b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
            {},
            "The download link refused the transfer with HTTP 403 (AccessDenied: Request has expired).",
        ),
        (200, b"abc", {"Content-Length": "10"}, None),
    ],
)
def test_a_failed_download_leaves_nothing(
    tmp_path: Path, status: int, body: bytes, headers: dict, sentence: str | None
) -> None:
    pool = TransferPool(status, body, headers)
    with pytest.raises(CliError) as caught:
        transfer.download(pool, LINK, tmp_path / "f.csv", QUIET)
    if sentence is not None:
        assert caught.value.message == sentence
    else:  # the connection closed early
        assert caught.value.message == "The download stopped before its end: try again."
    assert list(tmp_path.iterdir()) == []


def test_an_upload_sends_the_raw_file_with_its_length(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"item;qty\n" * 100_000)
    pool = TransferPool(200, b"")
    assert transfer.upload(pool, LINK, source, QUIET) == source.stat().st_size
    [(method, headers, body)] = pool.sent
    assert (method, headers, body) == (
        "PUT",
        {"Content-Length": str(source.stat().st_size)},
        source.read_bytes(),
    )


def test_a_refused_upload_is_its_sentence(tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(b"\x00\x01")
    body = b"<Error><Code>InvalidContent</Code><Message>Only text files can be ingested</Message></Error>"
    with pytest.raises(CliError) as caught:
        transfer.upload(TransferPool(400, body), LINK, source, QUIET)
    assert caught.value.message == (
        "The upload link refused the transfer with HTTP 400 "
        "(InvalidContent: Only text files can be ingested)."
    )


# --- operations: keep-alive runs, pairing links, activity --------------------------------------------


def scripted_cli(monkeypatch: pytest.MonkeyPatch, answers: list[tuple[int, Any]]) -> ScriptedPool:
    """The commands' API is a scripted pool: what they send is kept, what they print is the script's."""
    from x3link_cli import main

    pool = ScriptedPool(answers)
    monkeypatch.setattr(main.Session, "api", lambda self: Api(TARGET, pool))
    return pool


RUN: dict[str, Any] = {
    "id": "20261127T170000Z-0a1b2c3d",
    "started_at": "2026-11-27T17:00:00Z",
    "queued": 12,
    "refreshed": 10,
    "suspended": 1,
    "expired": 0,
    "held": 0,
    "failed": 1,
    "skipped": 0,
    "pending": 0,
    "rescued": 0,
    "deferred": 0,
}


def test_runs_lists_one_page_of_runs_newest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = scripted_cli(monkeypatch, [(200, {"runs": [RUN], "cursor": "c1"})])

    result = CliRunner(mix_stderr=False).invoke(cli, ["runs", "--limit", "5"])

    assert result.exit_code == 0, result.stderr
    assert [url for _, url, _, _ in pool.sent] == [f"{TARGET.url}/keep-alive/runs?limit=5"]
    row = next(line for line in result.stdout.splitlines() if RUN["id"] in line)
    assert row.split() == [RUN["id"], "2026-11-27T17:00:00Z", "12", "10", "1", "0", "1", "0"]


def test_runs_show_prints_the_counts_then_the_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    report = {**RUN, "failures": [{"tenant": "acme", "error": "upstream_error"}]}
    pool = scripted_cli(monkeypatch, [(200, report), (404, {"error": "unknown_run", "message": "No run."})])

    shown_run = CliRunner(mix_stderr=False).invoke(cli, ["runs", "show", RUN["id"]])
    unknown = CliRunner(mix_stderr=False).invoke(cli, ["runs", "show", "nope"])

    assert shown_run.exit_code == 0, shown_run.stderr
    assert pool.sent[0][1] == f"{TARGET.url}/keep-alive/runs/{RUN['id']}"
    lines = shown_run.stdout.splitlines()
    assert any(line.split() == ["queued", "12"] for line in lines)
    assert any(line.split() == ["acme", "upstream_error"] for line in lines)
    assert (unknown.exit_code, unknown.stderr.strip()) == (1, "Error: No run.")


def test_no_runs_says_so_on_stderr(monkeypatch: pytest.MonkeyPatch) -> None:
    scripted_cli(monkeypatch, [(200, {"runs": []})])

    result = CliRunner(mix_stderr=False).invoke(cli, ["runs"])

    assert (result.exit_code, result.stdout) == (0, "")
    assert "No keep-alive runs" in result.stderr


PAIRING_LINK: dict[str, Any] = {
    "id": "3f79bb7b435b05321651daefd374cdc681dc06faa65e374e38337b88ca046dea",
    "tenant": "acme",
    "customer": "https://x3.acme.example",
    "status": "pending",
    "created_at": "2026-11-27T17:00:00Z",
    "expires_at": "2026-12-04T17:00:00Z",
}


def test_links_lists_every_page_with_the_status_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    second = {**PAIRING_LINK, "id": "0" * 64, "tenant": "globex"}
    pool = scripted_cli(
        monkeypatch, [(200, {"pairings": [PAIRING_LINK], "cursor": "c1"}), (200, {"pairings": [second]})]
    )

    result = CliRunner(mix_stderr=False).invoke(cli, ["links", "--status", "pending"])

    assert result.exit_code == 0, result.stderr
    assert [url for _, url, _, _ in pool.sent] == [
        f"{TARGET.url}/pairings?status=pending",
        f"{TARGET.url}/pairings?cursor=c1&status=pending",
    ]
    rows = [line.split() for line in result.stdout.splitlines() if "https://x3.acme.example" in line]
    assert rows == [
        [
            PAIRING_LINK["id"],
            "acme",
            PAIRING_LINK["customer"],
            "pending",
            PAIRING_LINK["created_at"],
            PAIRING_LINK["expires_at"],
        ],
        [
            "0" * 64,
            "globex",
            PAIRING_LINK["customer"],
            "pending",
            PAIRING_LINK["created_at"],
            PAIRING_LINK["expires_at"],
        ],
    ]


def test_links_revoke_deletes_and_says_what_the_api_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    refused = {"error": "link_used", "message": "The pairing link has been opened already"}
    pool = scripted_cli(monkeypatch, [(204, None), (409, refused)])

    revoked = CliRunner(mix_stderr=False).invoke(cli, ["links", "revoke", PAIRING_LINK["id"]])
    used = CliRunner(mix_stderr=False).invoke(cli, ["links", "revoke", PAIRING_LINK["id"]])

    assert revoked.exit_code == 0, revoked.stderr
    assert pool.sent[0][:2] == ("DELETE", f"{TARGET.url}/pairings/{PAIRING_LINK['id']}")
    assert "no longer opens" in revoked.stderr
    assert (used.exit_code, used.stderr.strip()) == (1, "Error: The pairing link has been opened already.")


def test_links_refuses_an_unknown_status_as_a_usage_error() -> None:
    result = CliRunner(mix_stderr=False).invoke(cli, ["links", "--status", "active"])

    assert result.exit_code == 2


def test_activity_shows_each_entry_with_what_else_it_says(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [
        {"at": "2026-11-27T17:05:00Z", "type": "refresh", "outcome": "refreshed"},
        {"at": "2026-11-27T17:00:00Z", "type": "paired", "reason": "paired"},
    ]
    pool = scripted_cli(monkeypatch, [(200, {"activity": entries}), (200, {"activity": []})])

    result = CliRunner(mix_stderr=False).invoke(cli, ["activity", "acme", "--limit", "2"])
    empty = CliRunner(mix_stderr=False).invoke(cli, ["activity", "acme"])

    assert result.exit_code == 0, result.stderr
    assert pool.sent[0][1] == f"{TARGET.url}/tenants/acme/activity?limit=2"
    rows = [line.split() for line in result.stdout.splitlines() if "2026-11-27" in line]
    assert rows == [
        ["2026-11-27T17:05:00Z", "refresh", "-", "outcome:", "refreshed"],
        ["2026-11-27T17:00:00Z", "paired", "paired", "-"],
    ]
    assert (empty.exit_code, empty.stdout) == (0, "")
    assert "No activity for acme" in empty.stderr

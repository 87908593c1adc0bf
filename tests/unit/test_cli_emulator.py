"""`x3link emulator`'s and `x3link graphql`'s pure parts, without a socket: durations, finding the control API
in the stack file, the files an export makes, a GraphQL request's body, and click's usage errors (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from local.sagex3_emulator.control import ControlError, export_files, is_loopback
from x3link_cli.emulator import control_url, seconds
from x3link_cli.errors import CliError
from x3link_cli.live import bundle_error, request_body
from x3link_cli.main import cli


@pytest.mark.parametrize(
    ("text", "expected"), [("300", 300.0), ("90s", 90.0), ("15m", 900.0), ("2h", 7200.0), ("3d", 259200.0)]
)
def test_durations(text: str, expected: float) -> None:
    assert seconds(text) == expected


@pytest.mark.parametrize("text", ["", "-1", "2w", "d", "1.5.2h"])
def test_what_is_no_duration_is_refused(text: str) -> None:
    with pytest.raises(click.BadParameter):
        seconds(text)


def test_the_control_url_comes_from_the_stack_file() -> None:
    assert control_url({"emulator_control_url": "http://127.0.0.1:4321/control/"}) == (
        "http://127.0.0.1:4321/control"
    )
    with pytest.raises(CliError, match="runs no Sage X3 emulator"):
        control_url({"emulator_control_url": None})


def test_without_a_running_stack_an_emulator_command_is_one_sentence(tmp_path: Path) -> None:
    missing = tmp_path / "stack.json"
    result = CliRunner(mix_stderr=False).invoke(
        cli, ["emulator", "show"], env={"LOCAL_STACK_FILE": str(missing)}
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: `make run` is not running")


def test_a_stack_with_no_emulator_says_so(tmp_path: Path) -> None:
    import os

    stack_file = tmp_path / "stack.json"
    stack_file.write_text(json.dumps({"pid": os.getpid(), "api_url": "http://127.0.0.1:1"}))
    result = CliRunner(mix_stderr=False).invoke(
        cli, ["emulator", "show"], env={"LOCAL_STACK_FILE": str(stack_file)}
    )
    assert result.exit_code == 1
    assert "runs no Sage X3 emulator" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["emulator", "tokens"],
        ["emulator", "tokens", "--refresh-lifetime", "soon"],
        ["emulator", "fail"],  # an unknown ROUTE is one the emulator does not name: test_emulator_cli.py
        ["emulator", "fail", "folders", "--status", "200"],
        ["emulator", "app"],
        ["emulator", "files", "acme"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = CliRunner(mix_stderr=False).invoke(cli, args)
    assert result.exit_code == 2, result.output


def test_an_export_makes_numbered_files_of_the_size_asked() -> None:
    files = export_files({"count": 3, "size": 100, "prefix": "orders"})
    assert list(files) == ["orders-0001.csv", "orders-0002.csv", "orders-0003.csv"]
    assert {len(content) for content in files.values()} == {100}
    assert export_files({"names": ["a.csv", "b.csv"], "content": "x"}) == {"a.csv": b"x", "b.csv": b"x"}
    assert export_files({}) == {"export-0001.csv": export_files({})["export-0001.csv"]}


@pytest.mark.parametrize(
    "body",
    [
        {"count": 0},
        {"count": 1001},
        {"size": -1},
        {"names": ["a.csv"], "count": 2},
        {"names": "a.csv"},
        {"prefix": "a/b"},
        {"content": 1},
    ],
)
def test_an_export_out_of_bounds_is_refused(body: dict[str, object]) -> None:
    with pytest.raises(ControlError):
        export_files(body)


def test_only_loopback_hosts_are_loopback() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")  # noqa: S104  # nosec B104


def test_a_graphql_request_body() -> None:
    assert request_body("{ a }", None, None) == {"query": "{ a }"}
    assert request_body("query Q($x: Int) { a(x: $x) }", '{"x": 1}', "Q") == {
        "query": "query Q($x: Int) { a(x: $x) }",
        "variables": {"x": 1},
        "operationName": "Q",
    }
    for query, variables in (("  ", None), ("{ a }", "[1]"), ("{ a }", "nope")):
        with pytest.raises(click.BadParameter):
            request_body(query, variables, None)


def test_the_bundles_errors_are_told_from_sages_answers() -> None:
    assert bundle_error({"error": "scope_not_granted", "message": "Not granted."}) == "Not granted."
    assert bundle_error({"errors": [{"message": "Cannot query field"}]}) is None
    assert bundle_error({"data": None, "error": "x", "message": "y"}) is None

"""`x3link emulator faults` and `fail` against a live control API (in-process, over loopback HTTP): the
routes a failure can be set on are the emulator's own list, which the CLI reads rather than keeps."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from local.sagex3_emulator.control import ControlServer
from local.sagex3_emulator.faults import FAULT_ROUTES
from tests.component.emulator.conftest import Sage, call
from x3link_cli.main import cli


@pytest.fixture
def stack_file(sage: Sage, tmp_path: Path) -> Iterator[Path]:
    """A stack file as `make run` writes it, naming this test's control API."""
    server = ControlServer(sage.emu).start()
    path = tmp_path / "stack.json"
    document = {"pid": os.getpid(), "api_url": "http://127.0.0.1:1", "emulator_control_url": server.url}
    path.write_text(json.dumps(document), encoding="utf-8")
    try:
        yield path
    finally:
        server.stop()


def x3link(stack_file: Path, *args: str) -> Result:
    return CliRunner(mix_stderr=False).invoke(
        cli, ["emulator", *args], env={"LOCAL_STACK_FILE": str(stack_file)}
    )


def test_faults_lists_the_emulators_routes_and_what_is_pending(sage: Sage, stack_file: Path) -> None:
    empty = x3link(stack_file, "faults")
    armed = x3link(stack_file, "fail", "folders", "--status", "429", "--count", "2", "--retry-after", "60")
    pending = x3link(stack_file, "faults")
    as_json = x3link(stack_file, "faults", "--json")

    assert empty.exit_code == 0, empty.stderr
    assert empty.stdout.splitlines() == [f"routes    {', '.join(FAULT_ROUTES)}", "No failures pending."]
    assert armed.exit_code == 0, armed.stderr
    assert (
        pending.stdout.splitlines()[1]
        == "pending   the next 2 folders request(s) answer 429 (Retry-After 60)"
    )
    assert json.loads(as_json.stdout)["routes"] == list(FAULT_ROUTES)
    token = sage.pair()["access_token"]
    assert call("GET", sage.url("/folders"), token=token).status == 429


def test_a_route_the_emulator_does_not_name_is_a_usage_error(sage: Sage, stack_file: Path) -> None:
    result = x3link(stack_file, "fail", "nowhere")

    assert result.exit_code == 2, result.output
    assert "'nowhere' is not one of 'token', 'refresh'" in result.stderr
    assert sage.emu.pending_faults() == []


def test_the_help_says_where_the_routes_come_from() -> None:
    result = CliRunner(mix_stderr=False).invoke(cli, ["emulator", "fail", "--help"])

    assert result.exit_code == 0
    assert "x3link emulator faults" in result.stdout

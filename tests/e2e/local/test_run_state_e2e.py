"""`make run` as a developer watches it: its state outlives a restart (the pairing, its tokens, the files),
`FRESH=1` starts clean, `LOG_LEVEL` reaches the functions, and the console shows one short line per thing
while the JSON logs go to the file it names.

Serial: the restart must find the emulator's ports (which the stored pairing names) free again, and a stack
started beside it by another worker could take them in between (they are chosen away from 8100 too).
"""

from __future__ import annotations

import http.client
import json
import re
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from local import ports
from tests.e2e.conftest import HOST, RunningStack

pytestmark = pytest.mark.serial

TENANT = "demo"  # the tenant `make run` prints a pairing link for


def _emulator_call(url: str, *, form: dict[str, str] | None = None) -> str:
    """A GET (or a form POST) to the emulator that `make run` started, as the administrator's browser."""
    split = urlsplit(url)
    connection = http.client.HTTPConnection(split.hostname or HOST, split.port, timeout=10)
    try:
        target = split.path + (f"?{split.query}" if split.query else "")
        if form is None:
            connection.request("GET", target)
        else:
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            connection.request("POST", target, body=urlencode(form), headers=headers)
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200, (response.status, body)
        return body
    finally:
        connection.close()


def pair_demo(stack: RunningStack) -> None:
    """Open the printed link, accept with folder SEED ticked at the emulator's consent page, and let the
    browser post the callback: all over HTTP, as in a browser."""
    browser = stack.open_link(stack.pairing_link())
    consent = _emulator_call(browser.authorise_url)
    request_id = re.search(r'name="request_id" value="([^"]+)"', consent)
    action = re.search(r'<form method="post" action="([^"]+)"', consent)
    assert request_id and action, consent
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(browser.authorise_url))
    accept = {"request_id": request_id.group(1), "decision": "accept", "folder": "SEED"}
    decided = _emulator_call(origin + action.group(1), form=accept)
    params = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', decided))
    answer = stack.deliver(params, "post-form", browser=browser)
    assert answer.status == 200, (answer.status, answer.body)


def files(stack: RunningStack) -> list[str]:
    listed = stack.call("GET", f"/tenants/{TENANT}/folders/SEED/files")
    assert listed.status == 200, listed.body
    return sorted(item["name"] for item in listed.json()["files"])


def restartable(workdir: Path, port: int, emulator_port: int, **env: str) -> RunningStack:
    """A stack on fixed ports: the API's (the redirect URI) and the emulator's (which the saved pairings
    name), the latter away from 8100, where other stacks on this machine start theirs."""
    stack = RunningStack(workdir, port=port)
    stack.env.update(SAGE_X3_EMULATOR_PORT=str(emulator_port), **env)
    return stack


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_state_survives_a_restart_and_fresh_starts_clean(tmp_path: Path) -> None:
    port, emulator_port = ports.free_port(), ports.free_port()  # the same for all three runs
    log_file, state = tmp_path / "run.log", tmp_path / "state" / "snapshot.pickle"

    first = restartable(tmp_path, port, emulator_port).start()
    try:
        pair_demo(first)
        assert first.call("GET", f"/tenants/{TENANT}").json()["status"] == "active"
        before = files(first)
        assert len(before) == 3, before
        deleted = first.call("DELETE", f"/tenants/{TENANT}/folders/SEED/files/{before[0]}")
        assert deleted.status == 204, deleted.body
        # The pairing's event comes through the table's stream, a function and the bus: let it arrive.
        assert first.stdout is not None
        event = re.compile(rf"^event  PairingCompleted  tenant={TENANT}")
        assert first.stdout.wait_for(event, time.monotonic() + 30), first.output
    finally:
        assert first.stop() == 0, first.output
    assert state.exists(), first.output

    # The console: one short line per request, pairing and event; never a JSON log line or metric blob.
    console = first.output
    assert re.search(r"^POST /pairings -> 201 \(\d+ ms\)$", console, re.M), console
    assert re.search(r"^POST /callback -> 200 \(\d+ ms\)$", console, re.M), console
    assert re.search(rf"^pairing  Pairing completed  tenant={TENANT}  folders=SEED$", console, re.M), console
    assert re.search(rf"^event  PairingCompleted  tenant={TENANT}", console, re.M), console
    assert f"  Logs         {log_file}  " in console
    assert not [line for line in console.splitlines() if line.lstrip().startswith("{")], console
    # ...and the file holds the JSON: each log record and the metrics, at the template's INFO.
    logged = json_lines(log_file.read_text(encoding="utf-8"))
    assert any(record.get("message") == "Pairing completed" for record in logged)
    assert any("_aws" in record for record in logged), "no metric blob in the log file"
    assert not any(record.get("level") == "DEBUG" for record in logged)

    second = restartable(tmp_path, port, emulator_port, LOG_LEVEL="DEBUG").start()
    try:
        assert f"State        {state}  (restored, " in second.output, second.output
        assert f'Tenant "{TENANT}" is paired (active, restored)' in second.output, second.output
        # Still a ready link, which would replace the pairing.
        assert second.pairing_link().startswith(f"{second.api_url}/pair/")
        assert "(customer https://x3.demo.example, to pair it again):" in second.output
        assert second.call("GET", f"/tenants/{TENANT}").json()["status"] == "active"
        # The emulator's files came back as they were left (the deleted one stays deleted, none re-seeded).
        assert files(second) == before[1:]
        # The sealed refresh token opens with the restored key, and the restored emulator honours it.
        refreshed = second.call("POST", f"/tenants/{TENANT}/refresh")
        assert refreshed.status == 200, refreshed.body
        assert refreshed.json()["status"] == "active"
    finally:
        assert second.stop() == 0, second.output
    assert re.search(rf"^refresh  Tokens refreshed  tenant={TENANT}", second.output, re.M), second.output
    # LOG_LEVEL=DEBUG reached the functions (the template's LogLevel would say INFO).
    assert any(record.get("level") == "DEBUG" for record in json_lines(log_file.read_text(encoding="utf-8")))
    assert (tmp_path / "run.log.previous").exists()

    third = restartable(tmp_path, port, emulator_port, FRESH="1").start()
    try:
        assert "starting clean (FRESH=1)" in third.output, third.output
        assert third.call("GET", f"/tenants/{TENANT}").status == 404
        assert third.pairing_link().startswith(f"{third.api_url}/pair/")
    finally:
        assert third.stop() == 0, third.output
    assert (tmp_path / "state" / "previous.pickle").exists()


def test_a_killed_stack_loses_at_most_its_last_moments(tmp_path: Path) -> None:
    """SIGKILL gives no chance to save at stop: what the periodic save wrote is what comes back, whole."""
    port, emulator_port = ports.free_port(), ports.free_port()
    state = tmp_path / "state" / "snapshot.pickle"
    first = restartable(tmp_path, port, emulator_port).start()
    try:
        pair_demo(first)
        paired_at = time.time()
        # The next periodic save (every 5 s) holds the pairing: wait for the file to be replaced after it.
        deadline = time.monotonic() + 30
        while not (state.exists() and state.stat().st_mtime > paired_at + 0.5):
            assert time.monotonic() < deadline, "no save within 30 s of the pairing"
            time.sleep(0.25)
    finally:
        assert first.process is not None
        first.process.kill()
        first.process.wait(timeout=10)

    second = restartable(tmp_path, port, emulator_port).start()
    try:
        assert second.call("GET", f"/tenants/{TENANT}").json()["status"] == "active"
        assert second.call("POST", f"/tenants/{TENANT}/refresh").status == 200
    finally:
        assert second.stop() == 0, second.output


def test_a_second_stack_beside_the_first_keeps_nothing_rather_than_mixing_states(tmp_path: Path) -> None:
    shared = tmp_path / "shared-state"
    stacks = [RunningStack(tmp_path / name) for name in ("one", "two")]
    for stack in stacks:
        stack.stack_file.parent.mkdir()
        stack.env["LOCAL_STATE_DIR"] = str(shared)
    first = stacks[0].start()
    try:
        second = stacks[1].start()  # other ports: it serves, but keeps nothing
        try:
            assert f"State        {shared} is another make run's" in second.output, second.output
            assert second.pairing_link().startswith(f"{second.api_url}/pair/")
        finally:
            assert second.stop() == 0, second.output
        assert f"State        {shared / 'snapshot.pickle'}  (saved" in first.output, first.output
    finally:
        assert first.stop() == 0, first.output

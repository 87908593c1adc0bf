"""`make run`'s console: the functions' output goes to the log file, and only the lines a person watches for
(a pairing, a refresh, a warning) come back to the console, short."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from local import console


def record(message: str, level: str = "INFO", **fields: object) -> str:
    """One line as Powertools' Logger prints it."""
    return json.dumps({"level": level, "location": "x:1", "message": message, "service": "s", **fields})


def test_a_milestone_becomes_one_short_line_naming_only_what_identifies_it() -> None:
    line = record("Pairing completed", tenant="acme", folders=["SEED", "X3"], function_arn="arn:aws:lambda:x")
    assert console.summary(line) == "pairing  Pairing completed  tenant=acme  folders=SEED,X3"
    assert console.summary(record("Tokens refreshed", tenant="acme", version=4)) == (
        "refresh  Tokens refreshed  tenant=acme  version=4"
    )


def test_any_warning_or_error_is_shown_and_routine_info_is_not() -> None:
    failed = record("Keep-alive refresh failed", "WARNING", tenant="acme", error="Sage X3 did not answer")
    assert console.summary(failed) == (
        'warning  Keep-alive refresh failed  tenant=acme  error="Sage X3 did not answer"'
    )
    assert console.summary(record("Unexpected failure", "ERROR")) == "error  Unexpected failure"
    assert console.summary(record("Sage X3 data call answered", "DEBUG", status=200)) is None
    assert console.summary(record("Notification recorded", tenant="acme")) is None


def test_metric_blobs_and_other_text_stay_in_the_file() -> None:
    metric = json.dumps({"_aws": {"Timestamp": 1, "CloudWatchMetrics": []}, "PairingRequests": [1.0]})
    assert console.summary(metric) is None
    assert console.summary("not json at all") is None
    assert console.summary("[1, 2]") is None
    assert console.summary(json.dumps({"level": "WARNING"})) is None  # no message: nothing to say


def test_the_log_file_keeps_every_line_and_shows_a_summary_once_the_line_is_whole(tmp_path: Path) -> None:
    shown: list[str] = []
    log_file = console.LogFile(tmp_path / "run.log", shown.append)
    completed = record("Pairing completed", tenant="acme")
    log_file.write(completed[:20])
    assert shown == []  # half a line: nothing to judge yet
    log_file.write(completed[20:] + "\n" + record("Pairing started", tenant="b") + '\n{"_aws": {}}\n')
    log_file.close()
    assert shown == ["pairing  Pairing completed  tenant=acme", "pairing  Pairing started  tenant=b"]
    written = (tmp_path / "run.log").read_text(encoding="utf-8").splitlines()
    messages = [json.loads(line).get("message") for line in written]
    assert messages == ["Pairing completed", "Pairing started", None]


def test_capture_sends_stdout_to_the_file_and_say_to_the_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "logs" / "run.log"
    path.parent.mkdir()
    path.write_text("the last run's\n", encoding="utf-8")
    console.capture(path)
    try:
        print(record("Tokens refreshed", tenant="acme"))  # what a function's Logger does
        print(json.dumps({"_aws": {}, "Refreshes": [1.0]}))  # and its metrics
        console.say("Ready: http://127.0.0.1:3000")
    finally:
        console.release()
    assert sys.stdout is not None and not isinstance(sys.stdout, console.LogFile)
    shown = capsys.readouterr().out.splitlines()
    assert shown == ["refresh  Tokens refreshed  tenant=acme", "Ready: http://127.0.0.1:3000"]
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    assert (tmp_path / "logs" / "run.log.previous").read_text(encoding="utf-8") == "the last run's\n"

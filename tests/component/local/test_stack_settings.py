"""What `make run` takes from the environment beyond the contract's addresses: LOG_LEVEL, which must win over
the template's INFO, and where the state is kept (FRESH=1 to start clean)."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import stack_file
from local.stack import StackError, StackSettings


def test_log_level_from_the_environment_becomes_the_template_parameter() -> None:
    assert StackSettings.from_env({}).log_level is None  # the template's default (INFO) then
    assert StackSettings.from_env({"LOG_LEVEL": "debug"}).log_level == "DEBUG"
    # Powertools' own name, when given, is the one it would read first.
    both = {"LOG_LEVEL": "DEBUG", "POWERTOOLS_LOG_LEVEL": "WARNING"}
    assert StackSettings.from_env(both).log_level == "WARNING"


def test_a_log_level_the_template_does_not_allow_is_refused_in_one_sentence() -> None:
    with pytest.raises(StackError, match=r"LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, not 'loud'"):
        StackSettings.from_env({"LOG_LEVEL": "loud"})


def test_the_state_is_kept_beside_the_stack_file_unless_told_elsewhere(tmp_path: Path) -> None:
    assert StackSettings.from_env({}).state_dir == stack_file.DEFAULT_PATH.parent / "state"
    private = {"LOCAL_STACK_FILE": str(tmp_path / "stack.json")}
    assert StackSettings.from_env(private).state_dir == tmp_path / "state"
    explicit = {**private, "LOCAL_STATE_DIR": str(tmp_path / "elsewhere")}
    assert StackSettings.from_env(explicit).state_dir == tmp_path / "elsewhere"
    # Only `make run` keeps state: a stack a test builds by hand keeps none.
    assert StackSettings().state_dir is None


@pytest.mark.parametrize(
    ("value", "fresh"), [("1", True), ("yes", True), ("true", True), ("0", False), ("", False)]
)
def test_fresh_starts_clean_when_set(value: str, fresh: bool) -> None:
    assert StackSettings.from_env({"FRESH": value}).fresh is fresh

"""The emulator's saved state (what `make run` keeps across restarts): a new emulator given it honours the
refresh token issued before, under the same rotation rules, and serves the files as they were left."""

from __future__ import annotations

import pickle

from local.sagex3_emulator import Customer, Emulator
from tests.component.emulator.conftest import ACME, REDIRECT, FakeClock, Sage


def restarted(saved: dict[str, object], clock: FakeClock) -> Emulator:
    """A second emulator, as the next `make run` starts it (its customers come from the saved state)."""
    emulator = Emulator(redirect_uris=[REDIRECT], clock=clock).start()
    # Through pickle, as the state file carries it.
    emulator.restore(pickle.loads(pickle.dumps(saved)))  # noqa: S301  # our own bytes, just written
    return emulator


def test_a_restored_emulator_refreshes_the_token_issued_before(sage: Sage, clock: FakeClock) -> None:
    first = sage.pair(ACME)
    sage.emu.put_delivery_file(ACME, "SEED", "orders.csv", b"a;b\n")
    saved = sage.emu.snapshot()

    again = restarted(saved, clock)
    try:
        other = Sage(again, clock)
        refreshed = other.refresh(first["refresh_token"])
        assert refreshed.status == 200, refreshed.text
        # Rotation still holds: the token just used is spent, its successor is the one honoured.
        assert other.refresh(first["refresh_token"]).status == 401
        assert other.refresh(refreshed.json()["refresh_token"]).status == 200
        assert again.delivery_files(ACME, "SEED") == {"orders.csv": b"a;b\n"}
        assert again.get_customer(ACME) == sage.emu.get_customer(ACME)
    finally:
        again.stop()


def test_an_emulator_without_the_saved_state_refuses_that_token(sage: Sage, clock: FakeClock) -> None:
    first = sage.pair(ACME)
    other = Emulator(redirect_uris=[REDIRECT], customers=[Customer(ACME, ["SEED"])], clock=clock).start()
    try:
        assert Sage(other, clock).refresh(first["refresh_token"]).status in (400, 401)
    finally:
        other.stop()


def test_a_snapshot_is_a_copy_not_a_view(sage: Sage) -> None:
    sage.emu.put_delivery_file(ACME, "SEED", "one.csv", b"1")
    saved = sage.emu.snapshot()
    sage.emu.put_delivery_file(ACME, "SEED", "two.csv", b"2")
    assert [name for (_, folder), files in saved["delivery"].items() for name in files] == ["one.csv"]

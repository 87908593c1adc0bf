"""`make run`'s pollers (local/background.py): an idle one slows down to its idle interval, work or a wake
brings it back to its pace at once, and stopping never waits out a long interval."""

from __future__ import annotations

import threading
import time

from local.background import Repeating


class Polls:
    """A poll that answers what it is told to, and when it was called."""

    def __init__(self, answers: list[object]) -> None:
        self.answers = answers
        self.times: list[float] = []
        self.called = threading.Event()

    def __call__(self) -> object:
        self.times.append(time.monotonic())
        self.called.set()
        return self.answers.pop(0) if self.answers else None

    def gaps(self) -> list[float]:
        return [later - earlier for earlier, later in zip(self.times, self.times[1:], strict=False)]


def run(polls: Polls, seconds: float, **start: float) -> Repeating:
    loop = Repeating(polls, lambda line: None, name="test-poller", failing="poll failed")
    loop.start(**start)
    time.sleep(seconds)
    loop.stop()
    return loop


def test_an_idle_poller_doubles_its_wait_up_to_the_idle_interval() -> None:
    polls = Polls([])
    run(polls, 1.0, interval=0.02, idle_interval=0.16)

    gaps = polls.gaps()
    # A wait never ends early (only a wake ends it): the lower bounds hold on any machine.
    assert len(gaps) >= 4
    assert gaps[0] >= 0.035 and gaps[1] >= 0.07 and all(gap >= 0.15 for gap in gaps[2:])


def test_work_found_brings_the_poller_back_to_its_pace() -> None:
    polls = Polls([None, None, None, None, ["a delivery"]])
    run(polls, 1.2, interval=0.02, idle_interval=0.16)

    gaps = polls.gaps()
    assert gaps[3] >= 0.15  # idle by then
    assert gaps[4] < 0.1  # the poll after the one that found work comes at the busy pace


def test_without_an_idle_interval_the_pace_never_changes() -> None:
    polls = Polls([])
    run(polls, 0.4, interval=0.02)

    assert len(polls.times) >= 8  # 0.4 s at 0.02, not a doubling wait (which would poll 4 times)


def test_a_wake_polls_at_once_however_slow_the_poller_had_become() -> None:
    polls = Polls([])
    loop = Repeating(polls, lambda line: None, name="test-poller", failing="poll failed")
    loop.start(0.01, idle_interval=30.0)
    try:
        time.sleep(0.5)  # idle: its wait has grown to seconds
        polls.called.clear()
        loop.wake()
        assert polls.called.wait(2.0), "a wake did not bring a poll"
    finally:
        started = time.monotonic()
        loop.stop()
    assert time.monotonic() - started < 2.0  # stopping does not wait out the 30 s
    assert not loop.running

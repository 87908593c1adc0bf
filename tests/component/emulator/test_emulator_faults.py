"""Injected failures (`fail_next`), latency and the timeout mode's interaction with `stop()`."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest

from local.sagex3_emulator import Emulator
from tests.component.emulator.conftest import Sage


def test_status_fault_answers_without_applying(sage: Sage) -> None:
    tokens = sage.pair()
    sage.emu.fail_next("refresh", status=503, retry_after=7, count=2)
    for _ in range(2):
        reply = sage.refresh(tokens["refresh_token"])
        assert reply.status == 503
        assert reply.header("Retry-After") == "7"
        assert set(reply.json()) == {"message"}
    # Not applied: the same refresh token still works.
    assert sage.refresh(tokens["refresh_token"]).status == 200


def test_status_fault_with_custom_body_and_route_specificity(sage: Sage) -> None:
    sage.emu.fail_next("refresh", status=500)
    code = sage.emu.approve(sage.authorise_url())["authorizationCode"]
    assert sage.exchange(code).status == 200  # a refresh fault never hits the code grant
    sage.emu.fail_next("code", status=429, body={"message": "slow down"})
    code = sage.emu.approve(sage.authorise_url())["authorizationCode"]
    reply = sage.exchange(code)
    assert reply.status == 429 and reply.json() == {"message": "slow down"}
    assert reply.header("Retry-After") is None
    assert sage.exchange(code).status == 200


@pytest.mark.parametrize(
    ("route", "path"), [("folders", "/folders"), ("root", ""), ("datadelivery", "/datadelivery/SEED/")]
)
def test_status_fault_on_other_routes(sage: Sage, route: str, path: str) -> None:
    tokens = sage.pair()
    sage.emu.fail_next(route, status=502)
    assert sage.call("GET", sage.url(path), token=tokens["access_token"]).status == 502
    assert sage.call("GET", sage.url(path), token=tokens["access_token"]).status == 200


def test_token_fault_matches_every_grant(sage: Sage) -> None:
    sage.emu.fail_next("token", status=500, count=2)
    code = sage.emu.approve(sage.authorise_url())["authorizationCode"]
    assert sage.exchange(code).status == 500
    assert sage.refresh("anything").status == 500
    assert sage.exchange(code).status == 200


@pytest.mark.serial  # asserts a deadline
def test_timeout_fault_outlasts_the_client_but_not_other_requests(sage: Sage) -> None:
    sage.emu.configure(timeout_sleep=3.0)
    sage.emu.fail_next("folders", timeout=True)
    tokens = sage.pair()
    started = time.monotonic()
    with pytest.raises((TimeoutError, socket.timeout)):
        sage.call("GET", sage.url("/folders"), token=tokens["access_token"], timeout=0.3)
    # While that request sleeps, others are answered at once.
    assert sage.call("GET", sage.url("/folders"), token=tokens["access_token"]).status == 200
    assert time.monotonic() - started < 2.5


def test_timeout_fault_ends_with_a_dropped_connection(sage: Sage) -> None:
    sage.emu.configure(timeout_sleep=0.2)
    sage.emu.fail_next("root", timeout=True)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        sage.call("GET", sage.url(""), timeout=5)


@pytest.mark.serial  # asserts a deadline
def test_stop_ends_a_sleeping_timeout() -> None:
    emu = Emulator(regions=("eu-prod",)).start()
    emu.fail_next("root", timeout=True)  # default timeout_sleep: 30 s
    base = emu.base_url()
    outcome: list[BaseException | None] = []

    def waiting_client() -> None:
        try:
            conn = http.client.HTTPConnection(base.split("//")[1].split("/")[0], timeout=20)
            conn.request("GET", "/v1")
            conn.getresponse().read()
            outcome.append(None)
        except Exception as error:
            outcome.append(error)

    thread = threading.Thread(target=waiting_client)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    emu.stop()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 3
    assert outcome and isinstance(outcome[0], (http.client.RemoteDisconnected, ConnectionError))


def test_drop_after_apply_really_rotates(sage: Sage) -> None:
    tokens = sage.pair()
    sage.emu.fail_next("refresh", drop_after_apply=True)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        sage.refresh(tokens["refresh_token"])
    rotated = sage.emu.current_refresh_token(sage.ACME)
    assert rotated is not None
    assert rotated != tokens["refresh_token"]
    assert sage.refresh(tokens["refresh_token"]).status == 401
    assert sage.refresh(rotated).status == 200


def test_drop_after_apply_consumes_the_code(sage: Sage) -> None:
    code = sage.emu.approve(sage.authorise_url())["authorizationCode"]
    sage.emu.fail_next("code", drop_after_apply=True)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        sage.exchange(code)
    assert sage.exchange(code).status == 403
    assert sage.emu.current_refresh_token(sage.ACME) is not None


def test_fail_next_validates_its_arguments(sage: Sage) -> None:
    with pytest.raises(ValueError):
        sage.emu.fail_next("nowhere", status=500)
    with pytest.raises(ValueError):
        sage.emu.fail_next("token")
    with pytest.raises(ValueError):
        sage.emu.fail_next("token", status=500, timeout=True)
    with pytest.raises(ValueError):
        sage.emu.fail_next("token", status=500, count=0)


def test_latency_delays_v1_requests(sage: Sage) -> None:
    sage.emu.configure(latency=0.2)
    started = time.monotonic()
    assert sage.call("GET", sage.url("")).status == 200
    assert time.monotonic() - started >= 0.2
    sage.emu.configure(latency=0.0)


def test_stop_then_start_keeps_ports_and_state(sage: Sage) -> None:
    tokens = sage.pair()
    base = sage.emu.base_url()
    sage.emu.stop()
    with pytest.raises(ConnectionRefusedError):
        sage.call("GET", base, timeout=2)
    sage.emu.start()
    assert sage.emu.base_url() == base
    assert sage.call("GET", f"{base}/folders", token=tokens["access_token"]).status == 200

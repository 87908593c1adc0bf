"""The emulator's control API (local/sagex3_emulator/control.py) over real loopback HTTP: each knob an
operator turns from the shell (`x3link emulator ...`) shows at the Sage-shaped routes, as the app would meet
it."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest

from local.sagex3_emulator.control import ControlServer
from local.sagex3_emulator.faults import FAULT_ROUTES
from tests.component.emulator.conftest import CLIENT_ID, Reply, Sage, call
from tests.component.emulator.test_emulator_notifications import app  # noqa: F401  # the app's receiver

Received = list[tuple[str, dict[str, str], bytes]]


@pytest.fixture
def control(sage: Sage) -> Iterator[str]:
    server = ControlServer(sage.emu).start()
    try:
        yield server.url
    finally:
        server.stop()


def _control(url: str, method: str, route: str = "", body: Any = None) -> Reply:
    return call(method, f"{url}{route}", json_body=body)


def test_it_listens_on_loopback_only(sage: Sage) -> None:
    with pytest.raises(ValueError, match="loopback"):
        ControlServer(sage.emu, host="0.0.0.0")  # noqa: S104  # nosec B104  # what is refused


def test_a_port_in_use_is_an_oserror_not_an_exit(sage: Sage, control: str) -> None:
    taken = int(control.rsplit(":", 1)[1].split("/")[0])

    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{taken}"):
        ControlServer(sage.emu, port=taken)


def test_show_names_the_gateways_knobs_and_apps(sage: Sage, control: str) -> None:
    answer = _control(control, "GET")

    assert answer.status == 200
    shown = answer.json()
    assert shown["regions"] == {region: sage.emu.base_url(region) for region in sage.emu.regions}
    assert shown["apps"] == [CLIENT_ID]
    assert shown["settings"]["refresh_lifetime"] == sage.emu.settings["refresh_lifetime"]
    assert "graphql" in shown["fault_routes"]


def test_files_are_exported_into_the_customers_folder(sage: Sage, control: str) -> None:
    generated = _control(
        control, "POST", "/files", {"customer": sage.ACME, "folder": "SEED", "count": 3, "size": 100}
    )
    given = _control(
        control,
        "POST",
        "/files",
        {"customer": sage.ACME, "folder": "X3", "names": ["a.csv"], "content": "x;1\n"},
    )

    assert generated.status == 200, generated.text
    assert [f["name"] for f in generated.json()["files"]] == [
        "export-0001.csv",
        "export-0002.csv",
        "export-0003.csv",
    ]
    seed = sage.emu.delivery_files(sage.ACME, "SEED")
    assert sorted(seed) == ["export-0001.csv", "export-0002.csv", "export-0003.csv"]
    assert {len(content) for content in seed.values()} == {100}
    assert given.status == 200 and sage.emu.delivery_files(sage.ACME, "X3") == {"a.csv": b"x;1\n"}
    # and Sage's own listing shows them to a token granted the folder
    token = sage.pair(folders=["SEED"])["access_token"]
    listed = call("GET", sage.url("/datadelivery/SEED/"), token=token).json()
    assert [item["key"] for item in listed["items"]] == sorted(seed)


def test_a_notification_is_signed_as_sage_signs_it_and_sent_to_the_app(
    sage: Sage,
    control: str,
    app: tuple[str, Received],  # noqa: F811
) -> None:
    url, received = app
    sage.emu.configure(notification_url=url)

    answer = _control(
        control, "POST", "/files", {"customer": sage.ACME, "folder": "SEED", "count": 2, "notify": True}
    )

    assert answer.status == 200, answer.text
    sent = answer.json()["notification"]
    assert (sent["sent"], sent["app_status"]) == (True, 200)
    ((_path, headers, body),) = received
    assert headers["HMAC_SHA256"] == hmac.new(CLIENT_ID.encode(), body, hashlib.sha256).hexdigest()
    payload = json.loads(body)
    assert payload["notificationId"] == sent["notification_id"] and payload["customerUrl"] == sage.ACME
    # its details name the files, from the customer's own gateway
    token = sage.pair(folders=["SEED"])["access_token"]
    detail = call("GET", payload["detailUrl"], token=token).json()
    assert [item["key"] for item in detail["files"]] == ["export-0001.csv", "export-0002.csv"]


def test_notify_without_a_notification_url_is_409(sage: Sage, control: str) -> None:
    answer = _control(control, "POST", "/notifications", {"customer": sage.ACME, "folder": "SEED"})

    assert (answer.status, answer.json()["error"]) == (409, "conflict")
    assert "notification URL" in answer.json()["message"]


def test_shorter_refresh_lifetimes_show_in_the_next_tokens(sage: Sage, control: str) -> None:
    answer = _control(control, "PUT", "/settings", {"refresh_lifetime": 3 * 86400, "access_lifetime": 120})

    assert answer.status == 200, answer.text
    tokens = sage.pair()
    assert tokens["expires_in"] == 120
    assert sage.emu.settings["refresh_lifetime"] == 3 * 86400


def test_unknown_or_bad_settings_are_400_and_change_nothing(sage: Sage, control: str) -> None:
    before = sage.emu.settings
    for body in (
        {"notification_url": "http://evil.example"},
        {"refresh_lifetime": -1},
        {"send_expires_in": 1},
        {},
    ):
        answer = _control(control, "PUT", "/settings", body)
        assert (answer.status, answer.json()["error"]) == (400, "bad_request"), body
    assert sage.emu.settings == before


def test_a_revoked_grant_is_refused_at_refresh(sage: Sage, control: str) -> None:
    tokens = sage.pair()

    answer = _control(control, "POST", "/revoke", {"customer": sage.ACME})

    assert answer.status == 200
    assert sage.refresh(tokens["refresh_token"]).status == 401


def test_a_refused_app_gets_sages_disabled_message(sage: Sage, control: str) -> None:
    tokens = sage.pair()

    refused = _control(control, "PUT", "/app", {"enabled": False})
    answer = sage.refresh(tokens["refresh_token"])
    accepted = _control(control, "PUT", "/app", {"enabled": True})

    assert refused.json() == {"client_id": CLIENT_ID, "enabled": False}
    assert answer.status == 403 and "disabled" in answer.json()["message"]
    assert accepted.status == 200 and sage.refresh(tokens["refresh_token"]).status == 200


def test_a_429_fault_answers_with_its_retry_after(sage: Sage, control: str) -> None:
    token = sage.pair()["access_token"]

    answer = _control(control, "POST", "/faults", {"route": "folders", "status": 429, "retry_after": 3600})
    first = call("GET", sage.url("/folders"), token=token)
    second = call("GET", sage.url("/folders"), token=token)

    assert answer.status == 200, answer.text
    assert (first.status, first.header("Retry-After")) == (429, "3600")
    assert second.status == 200


def test_the_fault_routes_and_the_pending_faults_are_listed(sage: Sage, control: str) -> None:
    before = _control(control, "GET", "/faults")
    _control(control, "POST", "/faults", {"route": "refresh", "status": 503, "count": 2, "retry_after": 9})
    _control(control, "POST", "/faults", {"route": "graphql", "timeout": True})
    pending = _control(control, "GET", "/faults/").json()["pending"]
    _control(control, "DELETE", "/faults")

    assert before.status == 200, before.text
    assert before.json() == {"routes": list(FAULT_ROUTES), "pending": []}
    assert [(f["route"], f["status"], f["count"], f["retry_after"], f["timeout"]) for f in pending] == [
        ("refresh", 503, 2, 9, False),
        ("graphql", None, 1, None, True),
    ]
    assert _control(control, "GET", "/faults").json()["pending"] == []


def test_faults_are_cleared(sage: Sage, control: str) -> None:
    token = sage.pair()["access_token"]
    _control(control, "POST", "/faults", {"route": "folders", "status": 500, "count": 5})

    assert _control(control, "DELETE", "/faults").status == 200
    assert call("GET", sage.url("/folders"), token=token).status == 200


@pytest.mark.parametrize(
    ("method", "route", "body", "status"),
    [
        ("POST", "/faults", {"route": "nope"}, 400),
        ("POST", "/faults", {"route": "folders", "status": 200}, 400),
        ("POST", "/files", {"customer": "", "folder": "SEED"}, 400),
        ("POST", "/files", {"customer": "https://x3.acme.example", "folder": "NOPE"}, 404),
        ("POST", "/files", {"customer": "https://x3.unknown.example", "folder": "SEED"}, 404),
        ("POST", "/files", {"customer": "https://x3.acme.example", "folder": "SEED", "count": 0}, 400),
        ("PUT", "/app", {"enabled": "no"}, 400),
        ("GET", "/nothing", None, 404),
        ("PUT", "/faults", None, 404),
    ],
)
def test_mistakes_are_refused_with_a_sentence(
    sage: Sage, control: str, method: str, route: str, body: Any, status: int
) -> None:
    answer = _control(control, method, route, body)

    assert answer.status == status, answer.text
    assert isinstance(answer.json()["message"], str)
    assert sage.emu.delivery_files(sage.ACME, "SEED") == {}

"""Every call that carries a token or the client secret is held to the configured gateways as it is sent:
the origin check as a pure unit, and Sage's client refusing before anything leaves the process."""

from __future__ import annotations

import json
import logging
from typing import Any, cast

import pytest
import urllib3
from aws_lambda_powertools import Metrics

from x3link.endpoints import EndpointPolicy, origin_of
from x3link.errors import GatewayNotAllowed
from x3link.sage.client import REFUSED_METRIC, SageX3Client

EU = "https://api.eu-prod-sagex3.com/v1"
US = "https://api.us-prod-sagex3.com/v1"
LOCAL = "http://127.0.0.1:8124/v1"
POLICY = EndpointPolicy(EU, [US, LOCAL])


@pytest.mark.parametrize(
    ("url", "gateway"),
    [
        (f"{EU}/token", EU),
        (EU, EU),
        (f"{EU}/", EU),
        ("HTTPS://API.EU-PROD-SAGEX3.COM/v1/folders", EU),  # scheme and host are case-blind
        ("https://Api.Eu-Prod-SageX3.com:443/v1/folders", EU),  # the default port, spelled out
        (f"{EU}/datadelivery/SEED/?filename=a%20b.csv", EU),
        (f"{EU}/datadelivery/SEED?page=2", EU),
        (f"{US}/notification/n-1", US),
        ("http://127.0.0.1:8124/v1/token", LOCAL),
        ("HTTP://127.0.0.1:8124/v1/dataingestion/tracking/0f0e", LOCAL),
    ],
)
def test_a_url_under_an_allowed_gateway_is_allowed(url: str, gateway: str) -> None:
    assert POLICY.gateway_of(url) == gateway


@pytest.mark.parametrize(
    "url",
    [
        # another port, another scheme
        "https://api.eu-prod-sagex3.com:8443/v1/token",
        "https://api.eu-prod-sagex3.com:0/v1/token",
        "https://api.eu-prod-sagex3.com:99999/v1/token",
        "http://api.eu-prod-sagex3.com/v1/token",
        "http://api.eu-prod-sagex3.com:443/v1/token",
        "https://127.0.0.1:8124/v1/token",
        "http://127.0.0.1:8125/v1/token",  # loopback, not the listed port: the list decides
        "http://localhost:8124/v1/token",  # the same machine, but not the name listed
        "ftp://api.eu-prod-sagex3.com/v1/token",
        "//api.eu-prod-sagex3.com/v1/token",
        "/v1/token",
        "",
        # the gateway's base path
        "https://api.eu-prod-sagex3.com/v2/token",
        "https://api.eu-prod-sagex3.com/V1/token",
        "https://api.eu-prod-sagex3.com/v1x/token",
        "https://api.eu-prod-sagex3.com/token",
        "https://api.eu-prod-sagex3.com",
        "https://api.eu-prod-sagex3.com/v1/../token",
        "https://api.eu-prod-sagex3.com/v1/%2e%2E/token",
        "https://api.eu-prod-sagex3.com/v1/./token",
        # userinfo, and the parsers that read it differently
        "https://user:secret@api.eu-prod-sagex3.com/v1/token",
        "https://api.eu-prod-sagex3.com@evil.example/v1/token",
        "https://evil.example\\@api.eu-prod-sagex3.com/v1/token",
        "https://evil.example\\api.eu-prod-sagex3.com/v1/token",
        # lookalike hosts
        "https://api.eu-prod-sagex3.com.evil.example/v1/token",
        "https://evil-api.eu-prod-sagex3.com/v1/token",
        "https://api.eu-prod-sagex3.com./v1/token",
        "https://\u0430pi.eu-prod-sagex3.com/v1/token",  # a Cyrillic a (U+0430)
        "https://xn--pi-6kc.eu-prod-sagex3.com/v1/token",  # the same, in punycode
        "https://api.eu-prod-sagex3\uff0ecom/v1/token",  # a full-width dot, which IDNA maps to "."
        # what is not a plain URL
        "https://api.eu-prod-sagex3.com/v1/token#fragment",
        "https://api.eu-prod-sagex3.com/v1/token\n",
        "https://api.eu-prod-sagex3.com/v1/to ken",
        " https://api.eu-prod-sagex3.com/v1/token",
        "https://api.eu-prod-sagex3.com/v1/\x7f",
    ],
)
def test_a_url_off_the_allowed_gateways_is_refused(url: str) -> None:
    assert POLICY.gateway_of(url) is None


def test_only_the_listed_gateways_are_allowed_whatever_the_scheme_rule_would_accept() -> None:
    only_eu = EndpointPolicy(EU, [])
    assert only_eu.gateway_of(f"{EU}/token") == EU
    assert only_eu.gateway_of(f"{US}/token") is None
    assert only_eu.gateway_of(f"{LOCAL}/token") is None


def test_a_gateway_with_no_base_path_takes_any_path_on_its_origin_only() -> None:
    bare = EndpointPolicy("http://[::1]:3000/", [])
    assert bare.gateway_of("http://[::1]:3000/token") == "http://[::1]:3000"
    assert bare.gateway_of("http://[::1]:3000") == "http://[::1]:3000"
    assert bare.gateway_of("http://[::1]:3001/token") is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@api.eu-prod-sagex3.com/v1/token?code=abc", "https://api.eu-prod-sagex3.com"),
        ("http://127.0.0.1:8125/v1/folders?access_token=xyz#f", "http://127.0.0.1:8125"),
        ("http://[::1]:3000/v1", "http://[::1]:3000"),
        ("https://host:notaport/v1", "(not a URL)"),
        ("/relative/only?secret=1", "(not a URL)"),
        ("https://ho st.example/v1", "(a host that is not a plain name)"),
    ],
)
def test_a_refused_origin_is_named_without_its_userinfo_path_or_query(url: str, shown: str) -> None:
    assert origin_of(url) == shown


# ---------------------------------------------------------------------------------------------- the client
class RecordingHttp:
    """Stands in for urllib3's pool: records each request; a test that expects none fails on any."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def request(self, method: str, url: str, **_: Any) -> Any:
        self.sent.append((method, url))
        raise AssertionError(f"a request was sent: {method} {url}")


@pytest.fixture
def http() -> RecordingHttp:
    return RecordingHttp()


@pytest.fixture
def client(http: RecordingHttp) -> SageX3Client:
    return SageX3Client(cast(urllib3.PoolManager, http), policy=POLICY)


SINK = "http://127.0.0.1:9/v1"
GRANT = {"grant_type": "refresh_token", "refresh_token": "rt-secret", "client_secret": "the-app-secret"}


@pytest.mark.parametrize(
    "send",
    [
        lambda c: c.token(SINK, GRANT),
        lambda c: c.folders(SINK, "at-secret", tenant="acme"),
        lambda c: c.get_json(f"{SINK}/datadelivery/SEED/", "at-secret", tenant="acme"),
        lambda c: c.get_location(f"{SINK}/datadelivery/SEED/?filename=a", "at-secret", tenant="acme"),
        lambda c: c.delete(f"{SINK}/datadelivery/SEED/?filename=a", "at-secret", tenant="acme"),
        lambda c: c.post_json(f"{SINK}/dataingestion/SEED?filename=a", "at-secret", tenant="acme"),
    ],
    ids=["token", "folders", "get_json", "get_location", "delete", "post_json"],
)
def test_the_client_refuses_every_call_off_the_list_before_sending_it(
    client: SageX3Client,
    http: RecordingHttp,
    send: Any,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    Metrics().clear_metrics()
    capsys.readouterr()
    with caplog.at_level(logging.DEBUG), pytest.raises(GatewayNotAllowed) as refused:
        send(client)

    assert http.sent == []
    assert (refused.value.status, refused.value.code) == (502, "endpoint_not_allowed")
    assert "operator" in refused.value.message and "127.0.0.1" not in refused.value.message
    [line] = [record for record in caplog.records if record.levelno == logging.CRITICAL]
    assert getattr(line, "origin", None) == "http://127.0.0.1:9"
    assert getattr(line, "tenant", "acme") == "acme"
    text = caplog.text + str([getattr(line, name, "") for name in ("origin", "tenant")])
    for secret in ("rt-secret", "the-app-secret", "at-secret", "?filename", "/v1"):
        assert secret not in text
    Metrics().flush_metrics()
    emitted = [json.loads(out) for out in capsys.readouterr().out.splitlines() if '"_aws"' in out]
    assert [doc[REFUSED_METRIC] for doc in emitted if REFUSED_METRIC in doc] in ([1.0], [[1.0]])


def test_an_allowed_call_is_sent_as_before(client: SageX3Client, http: RecordingHttp) -> None:
    with pytest.raises(AssertionError, match="a request was sent"):
        client.get_json(f"{EU}/datadelivery/SEED/", "at")
    assert http.sent == [("GET", f"{EU}/datadelivery/SEED/")]

"""x3link.endpoints as a pure unit: which gateways may receive a code and the client secret."""

from __future__ import annotations

import pytest

from x3link.config import Settings
from x3link.endpoints import EndpointPolicy, is_loopback, normalise
from x3link.errors import ConfigurationError, EndpointNotAllowed

EU = "https://api.eu-prod-sagex3.com/v1"
US = "https://api.us-prod-sagex3.com/v1"
LOCAL = "http://127.0.0.1:8124/v1"


# ---------------------------------------------------------------------------------------------- normalise
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (EU, EU),
        ("HTTPS://API.EU-PROD-SAGEX3.COM/v1", EU),
        ("https://Api.Eu-Prod-SageX3.com/v1/", EU),
        ("https://api.eu-prod-sagex3.com:443/v1", EU),
        ("https://api.eu-prod-sagex3.com:8443/v1", "https://api.eu-prod-sagex3.com:8443/v1"),
        ("https://api.eu-prod-sagex3.com", "https://api.eu-prod-sagex3.com"),
        ("https://api.eu-prod-sagex3.com/", "https://api.eu-prod-sagex3.com"),
        ("https://api.eu-prod-sagex3.com/V1", "https://api.eu-prod-sagex3.com/V1"),  # path keeps its case
        ("http://127.0.0.1:8124/v1", LOCAL),
        ("http://127.0.0.1:80/v1", "http://127.0.0.1/v1"),
        ("http://LOCALHOST:3000/v1", "http://localhost:3000/v1"),
        ("http://[::1]:3000/v1", "http://[::1]:3000/v1"),
        ("http://127.8.9.10/v1", "http://127.8.9.10/v1"),
    ],
)
def test_normalise_canonical_form(given: str, expected: str) -> None:
    assert normalise(given) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "api.eu-prod-sagex3.com/v1",
        "//api.eu-prod-sagex3.com/v1",
        "ftp://api.eu-prod-sagex3.com/v1",
        "javascript://api.eu-prod-sagex3.com/v1",
        "https://user@api.eu-prod-sagex3.com/v1",
        "https://user:pw@api.eu-prod-sagex3.com/v1",
        "https://@api.eu-prod-sagex3.com/v1",
        "https://api.eu-prod-sagex3.com@evil.example/v1",
        "https://api.eu-prod-sagex3.com/v1?x=1",
        "https://api.eu-prod-sagex3.com/v1?",
        "https://api.eu-prod-sagex3.com/v1#frag",
        "https://api.eu-prod-sagex3.com/v1#",
        " https://api.eu-prod-sagex3.com/v1",
        "https://api.eu-prod-sagex3.com/v1 ",
        "https://api.eu-prod-sagex3.com/v1\n",
        "https://api.eu-prod-sagex3.com/v1\t",
        "https://api.eu-prod-sagex3.com /v1",
        "https://api.eu-prod-sagex3.com/v1\x00",
        "https://api.eu-prod-sagex3.com/v1\x7f",
        "https://evil.example\\@api.eu-prod-sagex3.com/v1",
        "https:\\\\api.eu-prod-sagex3.com\\v1",
        "https://api.eu-prod-sagex3.com/v1/../v2",
        "https://api.eu-prod-sagex3.com/./v1",
        "https://api.eu-prod-sagex3.com/v1%2F..",
        "https://api.eu-prod-sagex3.com/v1;x",
        "https://api.eu-prod-sagex3.com:99999/v1",
        "https://api.eu-prod-sagex3.com:-1/v1",
        "https://api.eu-prod-sagex3.com:x/v1",
        "https://api_eu.example/v1",
        "https://-api.example/v1",
        "https://api..example/v1",
        "https://api.example./v1",
        "https://%61pi.example/v1",
        "https://api\u3002example/v1",
        "https://\u0430pi.example/v1",  # Cyrillic a
        "https:///v1",
        "https://[::1/v1",
        "http://api.eu-prod-sagex3.com/v1",  # plain http off loopback
        "http://10.0.0.1/v1",
        "http://127.0.0.1.evil.example/v1",
        "http://localhost.evil.example/v1",
    ],
)
def test_normalise_refuses_anything_but_a_plain_base_url(url: str) -> None:
    with pytest.raises(ValueError):
        normalise(url)


def test_plain_http_only_for_loopback() -> None:
    assert normalise("http://127.0.0.1/v1") == "http://127.0.0.1/v1"
    assert normalise("http://localhost/v1") == "http://localhost/v1"
    assert normalise("http://[::1]/v1") == "http://[::1]/v1"
    for host in ("192.168.1.10", "api.eu-prod-sagex3.com", "0.0.0.0", "[::]", "example.localhost"):  # noqa: S104
        with pytest.raises(ValueError, match="http"):
            normalise(f"http://{host}/v1")
    assert normalise("https://192.168.1.10/v1") == "https://192.168.1.10/v1"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),  # noqa: S104
        ("10.0.0.1", False),
        ("localhost.example", False),
        ("127.0.0.1.nip.io", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


# ---------------------------------------------------------------------------------------------- the policy
def _policy() -> EndpointPolicy:
    return EndpointPolicy(EU, [US])


@pytest.mark.parametrize("endpoint", [None, ""])
def test_absent_endpoint_means_the_default_gateway(endpoint: str | None) -> None:
    assert _policy().resolve(endpoint) == EU


@pytest.mark.parametrize(
    ("endpoint", "resolved"),
    [
        (US, US),
        (US + "/", US),
        ("HTTPS://API.US-PROD-SAGEX3.COM/v1", US),
        ("https://api.us-prod-sagex3.com:443/v1", US),
        (EU, EU),
    ],
)
def test_allowed_endpoints_resolve_to_their_canonical_form(endpoint: str, resolved: str) -> None:
    assert _policy().resolve(endpoint) == resolved


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://api.evil-sagex3.com/v1",  # suffix rule
        "https://api.us-prod-sagex3.com.evil.example/v1",  # prefix rule
        "https://evilapi.us-prod-sagex3.com/v1",
        "https://x.api.us-prod-sagex3.com/v1",
        "https://api.ap-prod-sagex3.com/v1",  # a real-looking region nobody configured
        "https://api.us-prod-sagex3.com/v2",
        "https://api.us-prod-sagex3.com/v1/x",
        "https://api.us-prod-sagex3.com/v1/token",
        "https://api.us-prod-sagex3.com",
        "https://api.us-prod-sagex3.com:8443/v1",
        "http://api.us-prod-sagex3.com/v1",
        "https://evil@api.us-prod-sagex3.com/v1",
        "https://api.us-prod-sagex3.com@evil.example/v1",
        "https://api.us-prod-sagex3.com/v1?next=https://evil.example",
        "https://api.us-prod-sagex3.com/v1#",
        "https://api.us-prod-sagex3.com\\@evil.example/v1",
        "https://api.us-prod-sagex3.com/v1 ",
        " https://api.us-prod-sagex3.com/v1",
        "https://api.us-prod-sagex3.com/v1\r\n",
        "https://api.us-prod-sagex3.com/v1junk",
        "https://api.us-prod-sagex3.com./v1",
        "https://api.us-prod-sagex3.com/v1/.",
        "https://api.us-prod-sagex3.com/v1/..",
        "us-prod",
        "https://",
    ],
)
def test_everything_else_is_refused(endpoint: str) -> None:
    with pytest.raises(EndpointNotAllowed) as refused:
        _policy().resolve(endpoint)
    assert refused.value.status == 400
    assert refused.value.code == "endpoint_not_allowed"


def test_only_configured_loopback_gateways_are_allowed_locally() -> None:
    policy = EndpointPolicy(LOCAL, ["http://127.0.0.1:8125/v1"])
    assert policy.resolve("http://127.0.0.1:8125/v1") == "http://127.0.0.1:8125/v1"
    assert policy.resolve("HTTP://127.0.0.1:8124/v1/") == LOCAL
    for endpoint in (
        "http://localhost:8124/v1",
        "http://127.0.0.2:8124/v1",
        "http://127.0.0.1:8126/v1",
        "https://127.0.0.1:8124/v1",
        "http://[::1]:8124/v1",
    ):
        with pytest.raises(EndpointNotAllowed):
            policy.resolve(endpoint)


def test_a_bad_configured_endpoint_fails_at_construction() -> None:
    with pytest.raises(ValueError):
        EndpointPolicy("http://api.eu-prod-sagex3.com/v1", [])
    with pytest.raises(ValueError):
        EndpointPolicy(EU, ["https://user@api.us-prod-sagex3.com/v1"])


# ---------------------------------------------------------------------------------------------- settings
BASE_ENV = {
    "PAIRINGS_TABLE": "p",
    "PAIRING_STATES_TABLE": "s",
    "CLIENT_CREDENTIALS_SECRET": "c",
    "PAIRING_EVENTS_BUS": "b",
    "TOKEN_RESCUE_QUEUE_URL": "q",
}


def test_settings_normalise_the_allow_list() -> None:
    settings = Settings.from_env(
        {
            **BASE_ENV,
            "SAGE_X3_URL": "HTTPS://API.EU-PROD-SAGEX3.COM/v1/",
            "SAGE_X3_ALLOWED_ENDPOINTS": f" {US}/ , ,https://api.ap-prod-sagex3.com/v1,{EU}",
        }
    )
    assert settings.sage_x3_url == EU
    assert settings.allowed_endpoints == (EU, US, "https://api.ap-prod-sagex3.com/v1")


def test_settings_refuse_an_unsafe_gateway() -> None:
    with pytest.raises(ConfigurationError):
        Settings.from_env({**BASE_ENV, "SAGE_X3_URL": "http://api.eu-prod-sagex3.com/v1"})
    with pytest.raises(ConfigurationError):
        Settings.from_env(
            {**BASE_ENV, "SAGE_X3_URL": EU, "SAGE_X3_ALLOWED_ENDPOINTS": "https://a@b.example/v1"}
        )

"""Builds each service once per execution environment from the environment's settings.

Handlers ask for what they use, so a cold start only pays for its own clients; tests call `reset()`.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from x3link.config import Settings


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def _client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=5)
    return boto3.session.Session().client(service, config=config)  # type: ignore[call-overload]


@cache
def sage_client() -> Any:
    from x3link.sage_client import SageX3Client

    return SageX3Client(read_timeout=settings().sage_timeout_seconds)


def client_credentials() -> Any:
    from x3link.credentials import load_client_credentials

    return load_client_credentials(settings().credentials_secret)


@cache
def token_store() -> Any:
    from x3link.token_store import TokenStore

    return TokenStore(settings().pairings_table, _client("dynamodb"))


@cache
def pairing_service() -> Any:
    from x3link.pairing import PairingService
    from x3link.pairing_states import PairingStates

    states = PairingStates(settings().states_table, _client("dynamodb"))
    # Sage's HTTP client is only needed by the callback: starting a pairing never loads urllib3.
    return PairingService(settings(), states, token_store(), sage_client, client_credentials)


@cache
def token_keeper() -> Any:
    from x3link.pairing_events import PairingEvents
    from x3link.rescue import TokenRescue
    from x3link.token_keeper import TokenKeeper

    return TokenKeeper(
        token_store(),
        sage_client(),
        client_credentials,
        PairingEvents(settings().events_bus, _client("events")),
        TokenRescue(settings().rescue_queue_url, _client("sqs")),
        refresh_margin=settings().refresh_margin_seconds,
    )


def reset() -> None:
    for factory in (settings, _client, sage_client, token_store, pairing_service, token_keeper):
        factory.cache_clear()

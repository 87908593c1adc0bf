"""Settings read once from the function's environment, which template.yaml defines."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from x3link.endpoints import normalise
from x3link.errors import ConfigurationError

DEFAULT_SCOPE = "api.dataDelivery"
TENANT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# What a caller is told when a tenant does not match TENANT_PATTERN (a body's or a path's).
TENANT_RULE = "tenant must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit."
STATE_LIFETIME_SECONDS = 600
# A pairing link is usually sent by e-mail and opened days later: its own clock is separate from the state's.
LINK_LIFETIME_HOURS = 168
# Sage's access tokens live 5 minutes: refreshing 2 minutes early keeps a slow query from racing the expiry.
REFRESH_MARGIN_SECONDS = 120


@dataclass(frozen=True)
class Settings:
    pairings_table: str
    states_table: str
    credentials_secret: str
    events_bus: str
    rescue_queue_url: str
    sage_x3_url: str
    allowed_endpoints: tuple[str, ...]
    public_base_url: str = ""
    success_url: str = ""
    keep_alive_seconds: float = 7 * 86400
    refresh_margin_seconds: float = REFRESH_MARGIN_SECONDS
    state_lifetime_seconds: int = STATE_LIFETIME_SECONDS
    link_lifetime_seconds: float = LINK_LIFETIME_HOURS * 3600
    # Off only for a Sage X3 that would call back server-to-server, without the person's browser.
    browser_binding: bool = True
    sage_timeout_seconds: float = 10.0
    # Set by template.yaml; optional here so a partial environment (one function's tests) still loads.
    rescue_dead_letter_queue_url: str = ""
    data_key_id: str = ""
    grace_period_seconds: float = 72 * 3600
    notifications_table: str = ""
    refresh_queue_url: str = ""
    refresh_spread_seconds: int = 900
    refresh_max_receives: int = 3
    refresh_retry_seconds: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def required(name: str) -> str:
            return required_env(name, env)

        try:
            sage_x3_url = normalise(required("SAGE_X3_URL"))
            listed = env.get("SAGE_X3_ALLOWED_ENDPOINTS", "").split(",")
            extra = [part.strip() for part in listed if part.strip()]
            allowed = tuple(dict.fromkeys([sage_x3_url, *(normalise(url) for url in extra)]))
        except ValueError as exc:
            raise ConfigurationError(f"Sage X3 endpoint configuration is invalid: {exc}") from exc
        keep_alive_days = float(env.get("KEEP_ALIVE_DAYS") or 7)
        binding = env.get("PAIRING_BROWSER_BINDING", "enabled").strip().lower() or "enabled"
        if binding not in ("enabled", "disabled"):
            raise ConfigurationError("PAIRING_BROWSER_BINDING must be 'enabled' or 'disabled'")
        margin = max(60.0, float(env.get("REFRESH_MARGIN_SECONDS") or REFRESH_MARGIN_SECONDS))
        return cls(
            pairings_table=required("PAIRINGS_TABLE"),
            states_table=required("PAIRING_STATES_TABLE"),
            credentials_secret=required("CLIENT_CREDENTIALS_SECRET"),
            events_bus=required("PAIRING_EVENTS_BUS"),
            rescue_queue_url=required("TOKEN_RESCUE_QUEUE_URL"),
            sage_x3_url=sage_x3_url,
            allowed_endpoints=allowed,
            public_base_url=env.get("PUBLIC_BASE_URL", "").rstrip("/"),
            success_url=env.get("PAIRING_SUCCESS_URL", ""),
            keep_alive_seconds=keep_alive_days * 86400,
            refresh_margin_seconds=margin,
            sage_timeout_seconds=float(env.get("SAGE_X3_TIMEOUT_SECONDS") or 10),
            rescue_dead_letter_queue_url=env.get("TOKEN_RESCUE_DLQ_URL", ""),
            data_key_id=env.get("DATA_KEY_ID", ""),
            grace_period_seconds=float(env.get("GRACE_PERIOD_HOURS") or 72) * 3600,
            link_lifetime_seconds=float(env.get("PAIRING_LINK_LIFETIME_HOURS") or LINK_LIFETIME_HOURS) * 3600,
            browser_binding=binding == "enabled",
            notifications_table=env.get("NOTIFICATIONS_TABLE", ""),
            refresh_queue_url=env.get("REFRESH_QUEUE_URL", ""),
            refresh_spread_seconds=int(env.get("REFRESH_SPREAD_SECONDS") or 900),
            refresh_max_receives=int(env.get("REFRESH_MAX_RECEIVES") or 3),
            refresh_retry_seconds=float(env.get("REFRESH_RETRY_SECONDS") or 30),
        )

    def public_url(self, path: str, domain_name: str, stage: str) -> str:
        """A public route's URL: under the configured public base, else the execute-api URL of the request."""
        if self.public_base_url:
            return f"{self.public_base_url}{path}"
        return f"https://{domain_name}/{stage}{path}"

    def redirect_uri(self, domain_name: str, stage: str) -> str:
        return self.public_url("/callback", domain_name, stage)


def required_env(name: str, env: Mapping[str, str] | None = None) -> str:
    """A setting the function cannot work without: a clear error at init rather than a KeyError later."""
    value = (os.environ if env is None else env).get(name, "").strip()
    if not value:
        raise ConfigurationError(f"{name} is not set")
    return value

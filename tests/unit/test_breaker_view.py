"""A gateway's record as the keeper reads it: evidence per credentials version, and which suspended
pairings a closing breaker makes due again. Pure: the record is a dict as DynamoDB answers it."""

from __future__ import annotations

from x3link.refresh.breaker import BreakerView, gateway_key

GATEWAY = "https://api.eu-prod-sagex3.com/v1"


def test_each_gateway_has_a_key_no_tenant_can_take() -> None:
    key = gateway_key(GATEWAY)
    assert key.startswith("~") and GATEWAY in key
    assert gateway_key("https://api.us-prod-sagex3.com/v1") != key


def test_evidence_from_other_credentials_says_nothing() -> None:
    view = BreakerView(
        gateway=GATEWAY,
        success_at=10.0,
        success_by="globex",
        success_version="v1",
        refusal_at=20.0,
        refusal_by="initech",
        refusal_version="v2",
        opened_at=5.0,
    )

    old, new = view.evidence("v1"), view.evidence("v2")

    assert (old.success_at, old.refusal_at) == (10.0, None)
    assert (new.success_at, new.refusal_at) == (None, 20.0)
    assert old.opened_at == new.opened_at == 5.0  # app trouble counts whatever the version


def test_a_closing_breaker_makes_due_the_pairings_refused_just_before_it_opened() -> None:
    closed = BreakerView(gateway=GATEWAY, state="closed", opened_at=1000.0, closed_at=2000.0)

    assert closed.closed_after_refusal(990.0, window_seconds=900)  # refused 10 s before it opened
    assert closed.closed_after_refusal(1500.0, window_seconds=900)  # while it was open
    assert not closed.closed_after_refusal(50.0, window_seconds=900)  # long before: its own trouble
    assert not closed.closed_after_refusal(2500.0, window_seconds=900)  # refused again since it closed
    still_open = BreakerView(gateway=GATEWAY, state="open", opened_at=1000.0, closed_at=500.0)
    assert not still_open.closed_after_refusal(990.0, window_seconds=900)

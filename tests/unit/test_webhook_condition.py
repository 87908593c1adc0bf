"""The webhook's resources exist only when the template's parameters name a webhook (its condition), as
CloudFormation decides it; the local stack decides it the same way."""

from __future__ import annotations

from local import template as tpl

WEBHOOK_RESOURCES = {
    "WebhookConnection",
    "WebhookDestination",
    "WebhookDeliveryRole",
    "WebhookRule",
    "WebhookDeadLetterQueue",
    "WebhookDeadLetterQueuePolicy",
    "WebhookDeadLetterAlarm",
}


def test_the_webhook_resources_exist_only_with_a_url() -> None:
    without = {**tpl.parameter_defaults(), "SageX3Url": "https://api.example/v1"}
    assert not tpl.condition_holds("HasWebhook", without)
    assert not WEBHOOK_RESOURCES & set(tpl.created_resources(without))
    with_url = {**without, "WebhookUrl": "https://hooks.example/x3", "WebhookSecret": "s"}
    assert tpl.condition_holds("HasWebhook", with_url)
    assert set(tpl.created_resources(with_url)) >= WEBHOOK_RESOURCES
    # Everything else is the same either way.
    assert set(tpl.created_resources(with_url)) - WEBHOOK_RESOURCES == set(tpl.created_resources(without))

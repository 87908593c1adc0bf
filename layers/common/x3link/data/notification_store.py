"""The only code that speaks DynamoDB about notifications: each (notification, tenant) is recorded once.

A record is what announces `FilesAvailable` (the table's stream feeds PairingEventsFunction), so a
notification Sage sends again finds its record and announces nothing more, while one whose recording
failed is announced when Sage retries it. Records expire after `RETENTION_SECONDS` (DynamoDB's TTL).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

# Any: a DynamoDB item literal whose attributes are of mixed types.
from typing import TYPE_CHECKING, Any

from x3link.errors import ConfigurationError
from x3link.sage.notifications import Details

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

RETENTION_SECONDS = 7 * 86400


@dataclass(frozen=True)
class Delivery:
    """What one notification told one tenant, as recorded."""

    notification_id: str
    tenant: str
    customer: str
    sent_at: str | None
    details: Details
    received_at: float


class NotificationStore:
    def __init__(
        self, table_name: str, dynamodb: DynamoDBClient, retention_seconds: float = RETENTION_SECONDS
    ) -> None:
        if not table_name:
            raise ConfigurationError("NOTIFICATIONS_TABLE is not set")
        self._table = table_name
        self._db = dynamodb
        self._retention = retention_seconds

    @staticmethod
    def _key(notification_id: str, tenant: str) -> dict[str, dict[str, str]]:
        return {"notification_id": {"S": notification_id}, "tenant": {"S": tenant}}

    def seen(self, notification_id: str, tenant: str) -> bool:
        """Whether this notification was recorded for this tenant already (then nothing is fetched again)."""
        answer = self._db.get_item(
            TableName=self._table,
            Key=self._key(notification_id, tenant),
            ConsistentRead=True,
            ProjectionExpression="notification_id",
        )
        return "Item" in answer

    def record(self, delivery: Delivery) -> bool:
        """Record a delivery once; False when it was there already (a duplicate, or a concurrent copy)."""
        item: dict[str, Any] = {
            **self._key(delivery.notification_id, delivery.tenant),
            "customer": {"S": delivery.customer},
            "files": {"S": json.dumps([f.to_json() for f in delivery.details.files], separators=(",", ":"))},
            "truncated": {"BOOL": delivery.details.truncated},
            "received_at": {"N": repr(delivery.received_at)},
            "expires_epoch": {"N": str(int(delivery.received_at + self._retention))},
        }
        if delivery.details.folder:
            item["folder"] = {"S": delivery.details.folder}
        if delivery.sent_at:
            item["sent_at"] = {"S": delivery.sent_at}
        try:
            self._db.put_item(
                TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(notification_id)"
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

"""What an AWS call's failure may show: its error code, never its message (which may quote request values)."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

# A DynamoDB (or any AWS SDK) call that failed: throttled, refused, or never answered.
STORE_ERRORS = (ClientError, BotoCoreError)


def error_code(exc: Exception) -> str:
    """AWS's error code for a ClientError, the exception's class name for anything else."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    return type(exc).__name__

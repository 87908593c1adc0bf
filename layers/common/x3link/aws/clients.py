"""The AWS clients the layer builds, one per service and execution environment, with bounded retries and
timeouts. x3link/wiring.py hands them to the services it builds (and tests swap `aws_client` there).

Each client is typed by boto3-stubs, a dev-only dependency: the stubs are imported for mypy alone, never
when the layer runs, and layers/common/requirements.txt does not list them.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Literal, overload

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# Every service the layer speaks to.
Service = Literal["dynamodb", "events", "kms", "s3", "secretsmanager", "sqs"]


@overload
def aws_client(service: Literal["dynamodb"]) -> DynamoDBClient: ...
@overload
def aws_client(service: Literal["events"]) -> EventBridgeClient: ...
@overload
def aws_client(service: Literal["kms"]) -> KMSClient: ...
@overload
def aws_client(service: Literal["s3"]) -> S3Client: ...
@overload
def aws_client(service: Literal["secretsmanager"]) -> SecretsManagerClient: ...
@overload
def aws_client(service: Literal["sqs"]) -> SQSClient: ...
@cache
def aws_client(service: Service) -> object:
    import boto3
    from botocore.config import Config

    # Bounded so that one call's worst case (2 x (1 s + 3 s) plus backoff) fits the keeper's timing: a
    # commit under a refresh lease must finish, or park the tokens, well inside the lease.
    config = Config(retries={"mode": "standard", "max_attempts": 2}, connect_timeout=1, read_timeout=3)
    client: object = boto3.session.Session().client(service, config=config)
    return client


@cache
def s3_client() -> S3Client:
    """S3 for the delivery bucket: reads of a part may take longer than a table's 3 s."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=60)
    return boto3.session.Session().client("s3", config=config)

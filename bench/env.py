"""The environment every bench runs in, set on import: each bench module imports it first, before boto3,
moto or Powertools read it. Fake AWS credentials (moto answers every call), Powertools quiet (errors only)
and its metrics off, so the figures time the code, not log and EMF printing."""

from __future__ import annotations

import os

os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="us-east-1",
    POWERTOOLS_SERVICE_NAME="bench",
    POWERTOOLS_METRICS_NAMESPACE="Bench",
    POWERTOOLS_LOG_LEVEL="ERROR",
    POWERTOOLS_METRICS_DISABLED="true",
)

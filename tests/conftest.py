"""What every suite shares: fake AWS credentials and Powertools settings, set before any client or Logger
exists. The moto and emulator fixtures live in tests/component/conftest.py: tests/unit never imports moto."""

from __future__ import annotations

import os

for _name, _value in {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # Read when a Powertools Logger is created: layer modules may be imported before any fixture runs.
    "POWERTOOLS_SERVICE_NAME": "sage-x3-link",
    "POWERTOOLS_METRICS_NAMESPACE": "SageX3Link",
}.items():
    os.environ[_name] = _value
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)

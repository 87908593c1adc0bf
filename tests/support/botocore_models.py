"""botocore's model files, parsed once per test process rather than once per client.

Every `boto3.session.Session()` has a loader of its own, and the layer makes a new session for each client
(wiring.aws_client), as do moto's fixtures: each test would parse the same service models and endpoint
rules (megabytes of JSON) again, about 70 ms of CPU per client. The files never change during a run, and
botocore already shares one parsed copy among a session's clients (its loader's instance cache), so sharing
it among sessions changes nothing a test can see.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.loaders import JSONFileLoader


def share_parsed_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on (until `monkeypatch` is undone), each model file is read and parsed once."""
    parse = JSONFileLoader.load_file
    parsed: dict[str, Any] = {}

    def load_file(self: JSONFileLoader, file_path: str) -> Any:
        if file_path not in parsed:
            parsed[file_path] = parse(self, file_path)
        return parsed[file_path]

    monkeypatch.setattr(JSONFileLoader, "load_file", load_file)

"""The context object Lambda hands a handler, for in-process calls: Powertools' Logger and the
handlers read its names, ARN, request id and remaining time."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from local import template as tpl

DEFAULT_MEMORY_MB = 128


@dataclass
class LambdaContext:
    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    identity: Any = None
    client_context: Any = None
    tenant_id: str | None = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _memory_mb(logical_id: str) -> int:
    template = tpl.load()
    props = template["Resources"].get(logical_id, {}).get("Properties", {})
    global_props = template.get("Globals", {}).get("Function", {})
    return int(props.get("MemorySize", global_props.get("MemorySize", DEFAULT_MEMORY_MB)))


def for_function(
    logical_id: str, *, region: str, account_id: str, stack_name: str = "local"
) -> LambdaContext:
    """A fresh context (new request id, full timeout) for one invocation of a template function."""
    spec = tpl.functions().get(logical_id)
    name = f"{stack_name}-{logical_id}"
    return LambdaContext(
        function_name=name,
        invoked_function_arn=f"arn:aws:lambda:{region}:{account_id}:function:{name}",
        memory_limit_in_mb=_memory_mb(logical_id) if spec else DEFAULT_MEMORY_MB,
        timeout_seconds=spec.timeout if spec else 3,
    )

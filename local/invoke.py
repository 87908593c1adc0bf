"""`make invoke FUNCTION=<LogicalId> EVENT=<file>`: one function, in this process, against the stack
that `make run` serves (same AWS endpoint, same Sage X3, same function environment).

Only the function's result reaches stdout, as JSON, so it can be piped; everything the function logs
goes to stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from local import lambda_context, stack_file
from local import template as tpl

USAGE = (
    "usage: make invoke FUNCTION=<LogicalId> EVENT=<file>  (python -m local.invoke <LogicalId> <event-file>)"
)


class InvokeError(Exception):
    """Why nothing was invoked: one sentence for stderr."""


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout, by Python or below it, to stderr until the block ends.

    Powertools' Logger writes to stdout by default; both the sys.stdout swap (for loggers built inside
    the block) and the file-descriptor swap (for anything holding the real stdout) are needed.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if sys.__stdout__ is not None:
            sys.__stdout__.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _event(path: str) -> Any:
    file = Path(path)
    if not file.is_file():
        raise InvokeError(f"event file {path!r} does not exist")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InvokeError(f"event file {path!r} is not valid JSON: {exc}") from None


def prepare(logical_id: str, event_path: str) -> tuple[Any, dict[str, Any]]:
    """Check the arguments and the running stack; return the event and the stack's description."""
    if not logical_id or not event_path:
        raise InvokeError(USAGE)
    known = tpl.functions()
    if logical_id not in known:
        raise InvokeError(f"template.yaml has no function {logical_id!r}; it has: {', '.join(sorted(known))}")
    event = _event(event_path)
    try:
        state = stack_file.read()
    except stack_file.NoRunningStack as exc:
        raise InvokeError(str(exc)) from None
    return event, state


def environment(logical_id: str, state: dict[str, Any]) -> dict[str, str]:
    """The variables the function sees under `make run`, plus where AWS is and who we are there."""
    env = {
        "AWS_ENDPOINT_URL": state["aws_endpoint_url"],
        "AWS_REGION": state["region"],
        "AWS_DEFAULT_REGION": state["region"],
        "AWS_ACCESS_KEY_ID": state.get("access_key_id") or os.environ.get("AWS_ACCESS_KEY_ID") or "testing",
        "AWS_SECRET_ACCESS_KEY": state.get("secret_access_key")
        or os.environ.get("AWS_SECRET_ACCESS_KEY")
        or "testing",
    }
    env.update(state.get("functions", {}).get(logical_id, {}))
    return env


def invoke(logical_id: str, event: Any, state: dict[str, Any]) -> Any:
    os.environ.update(environment(logical_id, state))
    context = lambda_context.for_function(
        logical_id,
        region=state["region"],
        account_id="123456789012",
        stack_name=state.get("stack_name", "local"),
    )
    with stdout_to_stderr():
        handler = tpl.load_handler(logical_id)
        return handler(event, context)


QUEUE_COUNTS: list[
    Literal[
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
] = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
]


def wait_for_queues(names: list[str], state: dict[str, Any], timeout: float = 1800.0) -> None:
    """Until every named queue is empty (nothing waiting, delayed or in a worker's hands) twice in a row:
    the queue triggers of the running `make run` are doing the work."""
    import boto3

    env = environment("", state)
    sqs = boto3.client(
        "sqs",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    urls = [state.get("queues", {})[name] for name in names if name in state.get("queues", {})]
    deadline, empty_seen, told = time.monotonic() + timeout, 0, 0.0
    while True:
        left: int = sum(
            int(count)
            for url in urls
            for count in sqs.get_queue_attributes(QueueUrl=url, AttributeNames=QUEUE_COUNTS)[
                "Attributes"
            ].values()
        )
        empty_seen = empty_seen + 1 if left == 0 else 0
        if empty_seen >= 2:
            return
        if time.monotonic() > deadline:
            raise InvokeError(f"{', '.join(names)} still held {left} messages after {timeout:.0f} s")
        if time.monotonic() - told >= 10:
            print(f"waiting for {', '.join(names)} to drain: {left} messages left", file=sys.stderr)
            told = time.monotonic()
        time.sleep(0.25)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(USAGE, file=sys.stderr)
        return 1
    logical_id, event_path = argv
    try:
        event, state = prepare(logical_id, event_path)
    except InvokeError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        result = invoke(logical_id, event, state)
        fed = tpl.queues_fed_by(logical_id)
        if fed and isinstance(result, dict) and "run" in result and "report" not in event:
            # The function handed its work to a queue: print what was done once the queue is drained.
            wait_for_queues(fed, state)
            result = invoke(logical_id, {"report": result["run"]}, state)
    except InvokeError as exc:
        print(exc, file=sys.stderr)
        return 1
    except Exception as exc:
        traceback.print_exc(file=sys.stderr)
        print(f"{logical_id} raised {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Where the API is and what signs for it: a URL, a CloudFormation stack's `ApiUrl` output, or the stack
that `make run` serves (its `.local/stack.json`, written by local/stack_file.py)."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from x3link_cli.errors import CliError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient

STACK_FILE = Path(".local") / "stack.json"
_AWS_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


@dataclass(frozen=True)
class Keys:
    """The AWS keys that sign; `token` for temporary ones (a role, SSO). Never printed."""

    access_key: str
    secret_key: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Target:
    """The API's base URL (no trailing slash), the region to sign for, and the keys that sign."""

    url: str
    region: str
    credentials: Keys


def stack_file_candidates(environ: Mapping[str, str], cwd: Path, prefix: Path) -> list[Path]:
    """Where `make run`'s file may be: LOCAL_STACK_FILE if set; else the checkout the current directory is
    in, then the checkout whose `.venv` runs this tool (`prefix` is that venv)."""
    if environ.get("LOCAL_STACK_FILE"):
        return [Path(environ["LOCAL_STACK_FILE"])]
    beside_venv = prefix.parent / STACK_FILE
    # The checkout of the venv comes last, so that a message about a missing file names it.
    upwards = [folder / STACK_FILE for folder in (cwd, *cwd.parents)]
    return [path for path in upwards if path != beside_venv] + [beside_venv]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_stack_file(candidates: list[Path], alive: Callable[[int], bool] = _alive) -> dict[str, Any]:
    """The first candidate's contents, if the `make run` that wrote it still runs."""
    found = next((path for path in candidates if path.is_file()), None)
    if found is None:
        raise CliError(
            f"`make run` is not running (no {candidates[-1]}): start it, or say --stack NAME or --url URL."
        )
    try:
        data = json.loads(found.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise CliError(f"{found} is not readable JSON: restart `make run`.") from None
    pid = data.get("pid") if isinstance(data, dict) else None
    if not isinstance(pid, int) or not alive(pid):
        raise CliError(f"`make run` is not running (the one that wrote {found} has exited): start it again.")
    if not isinstance(data.get("api_url"), str):
        raise CliError(f"{found} names no API URL: restart `make run`.")
    return dict(data)


def region_of_url(url: str) -> str | None:
    """The region an API Gateway URL (`https://ID.execute-api.REGION.amazonaws.com/STAGE`) is in."""
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0].lower()
    found = _AWS_HOST.match(host)
    return found.group(1) if found else None


def api_url_from_outputs(stack: Mapping[str, Any], name: str) -> str:
    """The `ApiUrl` output of one stack as CloudFormation's DescribeStacks returns it."""
    for output in stack.get("Outputs") or []:
        if output.get("OutputKey") == "ApiUrl" and isinstance(output.get("OutputValue"), str):
            return str(output["OutputValue"])
    raise CliError(f"Stack {name} has no ApiUrl output: is it a Sage X3 link stack, fully deployed?")


def api_url_from_stack(cloudformation: CloudFormationClient, name: str, region: str) -> str:
    """Ask CloudFormation (a boto3 client, so tests can stub it) for the stack's `ApiUrl` output."""
    try:
        stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ValidationError":
            raise CliError(
                f"There is no stack named {name} in {region}: check --stack and --region."
            ) from None
        raise CliError(f"CloudFormation refused to describe stack {name} ({aws_reason(exc)}).") from None
    except BotoCoreError as exc:
        raise CliError(f"Could not ask CloudFormation about stack {name} ({aws_reason(exc)}).") from None
    if not stacks:
        raise CliError(f"There is no stack named {name} in {region}: check --stack and --region.")
    return api_url_from_outputs(stacks[0], name)


def aws_reason(exc: Exception) -> str:
    """A short reason for a boto failure: its error code, or its class, never its full text (which may
    quote a profile's settings)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "ClientError")
    return type(exc).__name__


def local_target(data: Mapping[str, Any], session_credentials: Callable[[], Keys]) -> Target:
    """`make run`'s stack: its URL and region, and the embedded moto's keys when the file holds them (with
    a real AWS behind it, the file holds no secret and the operator's own credentials sign)."""
    url = str(data["api_url"]).rstrip("/")
    region = str(data.get("region") or "us-east-1")
    access, secret = data.get("access_key_id"), data.get("secret_access_key")
    if isinstance(access, str) and isinstance(secret, str):
        return Target(url, region, Keys(access, secret))
    return Target(url, region, session_credentials())


def venv_prefix() -> Path:
    return Path(sys.prefix)

"""`x3link emulator ...`: the Sage X3 emulator that `make run` embeds, steered from the shell through its
control API (local/sagex3_emulator/control.py), found in `make run`'s stack file.

Only for `make run`'s stack: a real Sage X3 has no such knobs. A customer is named by its X3 URL, or by the
tenant paired with it (then read from the API: `GET /tenants/{tenant}`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Protocol

import click
import urllib3
from click.shell_completion import CompletionItem

from x3link_cli import locate, render
from x3link_cli.client import Answer, path
from x3link_cli.errors import CliError, unreachable

EXIT_CODES = (
    "Exit codes: 0 success; 1 the emulator, the network or the setup failed (one sentence on stderr); "
    "2 a usage error (a missing argument, an unknown option or value)."
)
TIMEOUT = urllib3.Timeout(connect=5.0, read=60.0)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class _Session(Protocol):
    """What the main group's object gives: the bundle's API, to read a tenant's customer."""

    def api(self) -> Any: ...


def seconds(value: str) -> float:
    """`90`, `90s`, `15m`, `2h` or `3d` as seconds."""
    found = _DURATION.match(value.strip().lower())
    if not found:
        raise click.BadParameter(f"{value!r} is no duration: say e.g. 300, 15m, 2h or 3d.")
    return float(found.group(1)) * _UNITS[found.group(2)]


def control_url(data: dict[str, Any], found_in: str = "the stack file") -> str:
    url = data.get("emulator_control_url")
    if not isinstance(url, str) or not url:
        raise CliError(
            f"`make run`'s stack runs no Sage X3 emulator ({found_in} names no control URL): it was started "
            "with SAGE_X3_URL, or by a version of `make run` without one; restart it without SAGE_X3_URL."
        )
    return url.rstrip("/")


class Control:
    """The emulator's control API over urllib3: JSON in, JSON out, unsigned (loopback only)."""

    def __init__(self, url: str, http: urllib3.PoolManager | None = None) -> None:
        self.url = url
        self.http = http or urllib3.PoolManager()

    def call(self, method: str, route: str = "", body: dict[str, Any] | None = None) -> Any:
        url = f"{self.url}{route}"
        try:
            response = self.http.request(
                method,
                url,
                body=json.dumps(body).encode() if body is not None else None,
                headers={"Content-Type": "application/json"} if body is not None else None,
                timeout=TIMEOUT,
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise CliError(unreachable(url, exc)) from None
        answer = Answer(response.status, response.data)
        document = answer.json()
        if response.status != 200:
            message = document.get("message") if isinstance(document, dict) else None
            raise CliError(f"The emulator refused: {message or f'HTTP {response.status}'}")
        return document


def _control() -> Control:
    candidates = locate.stack_file_candidates(os.environ, Path.cwd(), locate.venv_prefix())
    return Control(control_url(locate.read_stack_file(candidates)))


def _customer(who: str) -> str:
    """A customer URL as given, or the customer the tenant `who` is paired with."""
    if who.startswith(("https://", "http://")):
        return who
    session: _Session | None = click.get_current_context().find_root().obj
    if session is None:
        raise CliError("No API to ask for the tenant's customer: give the customer's URL instead.")
    tenant = session.api().call("GET", path("tenants", who)).json()
    customer = tenant.get("customer") if isinstance(tenant, dict) else None
    if not isinstance(customer, str):
        raise CliError(f"The API names no customer for the tenant {who}.")
    return customer


def _print(answer: Any, as_json: bool, summary: str) -> None:
    if as_json:
        click.echo(render.as_json(answer))
    else:
        click.echo(summary)


json_option = click.option("--json", "as_json", is_flag=True, help="Print the emulator's JSON as it is.")
who_argument = click.argument("who", metavar="TENANT|CUSTOMER_URL")


@click.group(epilog=EXIT_CODES)
def emulator() -> None:
    """Steer the Sage X3 emulator of `make run`: export files, notify, shorten tokens, revoke, refuse, 429.

    TENANT|CUSTOMER_URL names the X3 customer: its URL, or a tenant paired with it.
    """


@emulator.command("show", epilog=EXIT_CODES)
@json_option
def show(as_json: bool) -> None:
    """The emulator's gateways, knobs and registered apps."""
    answer = _control().call("GET")
    if as_json:
        click.echo(render.as_json(answer))
        return
    for region, url in answer["regions"].items():
        click.echo(f"gateway   {region}  {url}")
    click.echo(f"apps      {', '.join(answer['apps'])}")
    for name, value in sorted(answer["settings"].items()):
        click.echo(f"{name:<26} {value}")


@emulator.command("files", epilog=EXIT_CODES)
@who_argument
@click.argument("folder")
@click.option("--count", type=click.IntRange(1, 1000), default=None, help="How many files (default 1).")
@click.option("--size", type=click.IntRange(0), default=None, help="Bytes in each file (default 64).")
@click.option("--content", metavar="TEXT", help="What each file holds (instead of --size generated lines).")
@click.option("--name", "names", multiple=True, metavar="FILENAME", help="A file's name (repeat).")
@click.option("--prefix", metavar="P", help="Generated names are P-0001.csv... (default export).")
@click.option("--notify", is_flag=True, help="Then notify the app, as Sage does after an export.")
@json_option
def files(
    who: str,
    folder: str,
    count: int | None,
    size: int | None,
    content: str | None,
    names: tuple[str, ...],
    prefix: str | None,
    notify: bool,
    as_json: bool,
) -> None:
    """X3 exports files into the customer's data delivery FOLDER."""
    body: dict[str, Any] = {"customer": _customer(who), "folder": folder, "notify": notify}
    optional = {
        "count": count,
        "size": size,
        "content": content,
        "prefix": prefix,
        "names": list(names) or None,
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    answer = _control().call("POST", "/files", body)
    made = ", ".join(item["name"] for item in answer["files"])
    summary = f"Exported {len(answer['files'])} file(s) into {folder}: {made}"
    if "notification" in answer:
        summary += "\n" + _notified(answer["notification"])
    _print(answer, as_json, summary)


def _notified(sent: dict[str, Any]) -> str:
    return f"Notification {sent['notification_id']} sent; the app answered HTTP {sent['app_status']}."


@emulator.command("notify", epilog=EXIT_CODES)
@who_argument
@click.argument("folder")
@click.option("--file", "names", multiple=True, metavar="FILENAME", help="A file it names (default: all).")
@json_option
def notify(who: str, folder: str, names: tuple[str, ...], as_json: bool) -> None:
    """Send the app a data delivery notification for FOLDER, signed as Sage signs it."""
    body: dict[str, Any] = {"customer": _customer(who), "folder": folder}
    if names:
        body["files"] = list(names)
    answer = _control().call("POST", "/notifications", body)
    _print(answer, as_json, _notified(answer))
    if answer["app_status"] is None or not 200 <= answer["app_status"] < 300:
        raise CliError(f"The app did not accept the notification (HTTP {answer['app_status']}).")


@emulator.command("tokens", epilog=EXIT_CODES)
@click.option("--access-lifetime", type=seconds, metavar="DURATION", help="Of access tokens issued from now.")
@click.option(
    "--refresh-lifetime", type=seconds, metavar="DURATION", help="Of refresh tokens issued from now."
)
@json_option
def tokens(access_lifetime: float | None, refresh_lifetime: float | None, as_json: bool) -> None:
    """Change the lifetimes of the tokens Sage issues from now on (DURATION: 300, 15m, 2h, 3d)."""
    body = {
        name: value
        for name, value in (("access_lifetime", access_lifetime), ("refresh_lifetime", refresh_lifetime))
        if value is not None
    }
    if not body:
        raise click.UsageError("Say --access-lifetime and/or --refresh-lifetime.")
    answer = _control().call("PUT", "/settings", body)
    access, refresh = answer["settings"]["access_lifetime"], answer["settings"]["refresh_lifetime"]
    _print(answer, as_json, f"Tokens issued from now: access {access:g} s, refresh {refresh:g} s.")


@emulator.command("revoke", epilog=EXIT_CODES)
@who_argument
@json_option
def revoke(who: str, as_json: bool) -> None:
    """The customer deletes the app: every token of its grants dies."""
    answer = _control().call("POST", "/revoke", {"customer": _customer(who)})
    _print(answer, as_json, f"Revoked every grant of {answer['customer']}.")


@emulator.command("app", epilog=EXIT_CODES)
@click.option(
    "--refuse/--accept", "refuse", required=True, help="Disable the app at Sage, or enable it again."
)
@json_option
def app(refuse: bool, as_json: bool) -> None:
    """Sage refuses the app itself (403 "...is disabled"), or accepts it again."""
    answer = _control().call("PUT", "/app", {"enabled": not refuse})
    state = "accepts" if answer["enabled"] else "refuses"
    _print(answer, as_json, f"Sage X3 now {state} the app {answer['client_id']}.")


def _fault_routes(control: Control) -> list[str]:
    """The routes a failure can be set on: the emulator's own list (`GET /control/faults`)."""
    routes = control.call("GET", "/faults").get("routes")
    if not isinstance(routes, list):
        raise CliError("The emulator named no fault routes: is `make run` older than this x3link?")
    return [str(route) for route in routes]


def _complete_routes(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Shell completion of ROUTE from the running emulator; nothing when none runs."""
    try:
        routes = _fault_routes(_control())
    except (CliError, urllib3.exceptions.HTTPError):
        return []
    return [CompletionItem(route) for route in routes if route.startswith(incomplete)]


@emulator.command("faults", epilog=EXIT_CODES)
@json_option
def faults(as_json: bool) -> None:
    """The routes `fail` takes, and the failures set that have not happened yet."""
    answer = _control().call("GET", "/faults")
    if as_json:
        click.echo(render.as_json(answer))
        return
    click.echo(f"routes    {', '.join(answer['routes'])}")
    if not answer["pending"]:
        click.echo("No failures pending.")
    for fault in answer["pending"]:
        click.echo(f"pending   {_pending(fault)}")


def _pending(fault: dict[str, Any]) -> str:
    if fault["timeout"]:
        how = "time out"
    elif fault["drop_after_apply"]:
        how = "are applied, then the connection drops"
    else:
        how = f"answer {fault['status']}"
        if fault["retry_after"] is not None:
            how += f" (Retry-After {fault['retry_after']})"
    where = f" at {fault['region']}" if fault.get("region") else ""
    return f"the next {fault['count']} {fault['route']} request(s){where} {how}"


@emulator.command(
    "fail", epilog=EXIT_CODES, short_help="The next requests of ROUTE fail (e.g. 429, a timeout)."
)
@click.argument("route", metavar="ROUTE", shell_complete=_complete_routes)
@click.option("--status", type=click.IntRange(400, 599), default=500, show_default=True)
@click.option("--count", type=click.IntRange(1), default=1, show_default=True, help="How many requests fail.")
@click.option("--retry-after", type=click.IntRange(0), help="Seconds in a Retry-After header.")
@click.option("--timeout", is_flag=True, help="Never answer (instead of --status).")
@json_option
def fail(route: str, status: int, count: int, retry_after: int | None, timeout: bool, as_json: bool) -> None:
    """The next requests of ROUTE fail: e.g. `fail folders --status 429 --retry-after 3600`.

    ROUTE is one the emulator names (folders, datadelivery, graphql, refresh, ...): `x3link emulator faults`
    lists them all.
    """
    control = _control()
    routes = _fault_routes(control)
    if route not in routes:
        choices = ", ".join(repr(name) for name in routes)
        raise click.BadParameter(f"{route!r} is not one of {choices}.", param_hint="'ROUTE'")
    body: dict[str, Any] = {"route": route, "status": status, "count": count, "timeout": timeout}
    if retry_after is not None:
        body["retry_after"] = retry_after
    answer = control.call("POST", "/faults", body)
    how = "time out" if timeout else f"answer {status}"
    _print(answer, as_json, f"The next {count} {route} request(s) {how}.")


@emulator.command("clear", epilog=EXIT_CODES)
def clear() -> None:
    """Forget the failures `fail` set that have not happened yet."""
    _control().call("DELETE", "/faults")
    click.echo("No failures pending.")

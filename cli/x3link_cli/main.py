"""`x3link`: the click commands, one a route of the API. Each resolves the API only when it runs (so
`--help` needs no stack), calls it through `Api`, and prints a table, or the API's JSON with `--json`."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import urllib3
from botocore.exceptions import BotoCoreError
from rich.console import Console

from x3link_cli import locate, render, transfer
from x3link_cli.client import Api, path
from x3link_cli.console.command import console_command
from x3link_cli.doctor import doctor
from x3link_cli.emulator import emulator as emulator_group
from x3link_cli.errors import CliError
from x3link_cli.live import graphql as graphql_command

EXIT_CODES = (
    "Exit codes: 0 success; 1 the API, the network or the setup failed (one sentence on stderr); "
    "2 a usage error (a missing argument, an unknown option or value)."
)
STATUSES = ("active", "suspended", "expired")
LINK_STATUSES = ("pending", "opened", "used", "expired", "revoked")
# A pipe has no width: lines stay whole there, for grep.
PIPE_WIDTH = 250


def console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(file=stream, width=None if stream.isatty() else PIPE_WIDTH, soft_wrap=False)


def say(line: str) -> None:
    """A note for the person at the terminal: stderr, so stdout stays what a script reads."""
    click.echo(line, err=True)


@dataclass
class Session:
    """The global options, and the API they lead to, found on first use."""

    stack: str | None
    url: str | None
    profile: str | None
    region: str | None
    http: urllib3.PoolManager = field(default_factory=urllib3.PoolManager)
    _api: Api | None = None

    def _boto(self) -> Any:
        import boto3  # only when AWS is asked: `make run`'s stack needs no boto3 session

        try:
            return boto3.Session(profile_name=self.profile, region_name=self.region)
        except BotoCoreError as exc:
            raise CliError(
                f"The AWS profile {self.profile} cannot be used ({locate.aws_reason(exc)})."
            ) from None

    def _credentials(self, boto: Any) -> locate.Keys:
        try:
            found = boto.get_credentials()
            frozen = found.get_frozen_credentials() if found is not None else None
        except BotoCoreError as exc:
            raise CliError(f"The AWS credentials could not be loaded ({locate.aws_reason(exc)}).") from None
        if frozen is None or not frozen.access_key:
            raise CliError(
                "No AWS credentials were found: say --profile, or set them up as for the AWS CLI "
                "(AWS_PROFILE, environment variables, SSO or an instance role)."
            )
        return locate.Keys(frozen.access_key, frozen.secret_key, frozen.token or None)

    def _region(self, boto: Any, url: str | None) -> str:
        # As the AWS CLI v2: AWS_REGION before the profile's (and AWS_DEFAULT_REGION, which boto3 reads).
        from_url = locate.region_of_url(url) if url else None
        region = self.region or from_url or os.environ.get("AWS_REGION") or boto.region_name
        if not region:
            raise CliError("No AWS region is set: say --region, or set one in the profile or AWS_REGION.")
        return str(region)

    def target(self) -> locate.Target:
        if self.url:
            boto = self._boto()
            return locate.Target(self.url.rstrip("/"), self._region(boto, self.url), self._credentials(boto))
        if self.stack:
            boto = self._boto()
            region = self._region(boto, None)
            cloudformation = boto.client("cloudformation", region_name=region)
            url = locate.api_url_from_stack(cloudformation, self.stack, region).rstrip("/")
            return locate.Target(url, region, self._credentials(boto))
        candidates = locate.stack_file_candidates(os.environ, Path.cwd(), locate.venv_prefix())
        data = locate.read_stack_file(candidates)
        if self.profile:
            return locate.Target(
                str(data["api_url"]).rstrip("/"),
                self.region or str(data.get("region") or "us-east-1"),
                self._credentials(self._boto()),
            )
        return locate.local_target(data, lambda: self._credentials(self._boto()))

    def api(self) -> Api:
        if self._api is None:
            self._api = Api(self.target(), self.http)
        return self._api


pass_session = click.make_pass_decorator(Session)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the API's JSON as it is.")


def print_json(value: Any) -> None:
    click.echo(render.as_json(value))


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
@click.option("--stack", metavar="NAME", help="A deployed stack: the API is its ApiUrl output.")
@click.option(
    "--url",
    metavar="URL",
    help="The API's base URL, as is (e.g. https://ID.execute-api.REGION.amazonaws.com/prod).",
)
@click.option(
    "--profile",
    metavar="NAME",
    help="The AWS profile that signs (else the AWS CLI's chain: AWS_PROFILE, environment, SSO, role).",
)
@click.option(
    "--region",
    metavar="REGION",
    help="The region to sign for (else the URL's, AWS_REGION, or the profile's).",
)
@click.version_option(package_name="sage-x3-link", prog_name="x3link")
@click.pass_context
def cli(
    ctx: click.Context, stack: str | None, url: str | None, profile: str | None, region: str | None
) -> None:
    """Operate Sage X3 link: pair tenants, see and steer their pairings, move their files.

    With neither --stack nor --url it talks to the stack `make run` serves on this machine, signed with
    that stack's local credentials. Every call is signed with Signature Version 4 (execute-api).
    """
    if stack and url:
        raise click.UsageError("Say --stack or --url, not both.")
    ctx.obj = Session(stack=stack, url=url, profile=profile, region=region)


# --- pairing -----------------------------------------------------------------------------------------


@cli.command(epilog=EXIT_CODES)
@click.argument("tenant")
@click.argument("customer")
@click.option("--scope", metavar="S", help="The OAuth scope to ask Sage X3 for (the bundle's default else).")
@click.option(
    "--replace", is_flag=True, help="Let the tenant move to another X3 than the one it is paired with."
)
@json_option
@pass_session
def pair(
    session: Session, tenant: str, customer: str, scope: str | None, replace: bool, as_json: bool
) -> None:
    """Start pairing TENANT with the X3 customer at URL CUSTOMER: prints the pairing link to send."""
    body: dict[str, Any] = {"tenant": tenant, "customer": customer}
    if scope is not None:
        body["scope"] = scope
    if replace:
        body["replace"] = True
    answer = session.api().call("POST", "/pairings", json_body=body, expect=(201,)).json()
    if as_json:
        print_json(answer)
        return
    click.echo(answer["pairing_url"])
    say(f"Send it to the X3 administrator: it opens once, in one browser, until {answer['expires_at']}.")


@cli.group(invoke_without_command=True, epilog=EXIT_CODES)
@click.option("--status", type=click.Choice(STATUSES), help="Only the pairings with this status.")
@json_option
@click.pass_context
def tenants(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """List the pairings (every page), or act on one with a command below."""
    if ctx.invoked_subcommand is not None:
        return
    session = ctx.find_object(Session)
    assert session is not None
    listed = session.api().pages("/tenants", "tenants", {"status": status} if status else None)
    if as_json:
        print_json({"tenants": listed})
    elif listed:
        console().print(render.tenants_table(listed))
    else:
        say(render.no_tenants(status))


@tenants.command("show", epilog=EXIT_CODES)
@click.argument("tenant")
@json_option
@pass_session
def tenants_show(session: Session, tenant: str, as_json: bool) -> None:
    """Show TENANT's pairing: status, folders, token expiry, Sage's last refusal."""
    answer = session.api().call("GET", path("tenants", tenant)).json()
    if as_json:
        print_json(answer)
    else:
        console().print(render.fields_table(answer, render.PAIRING_FIELDS))


@tenants.command("refresh", epilog=EXIT_CODES)
@click.argument("tenant")
@json_option
@pass_session
def tenants_refresh(session: Session, tenant: str, as_json: bool) -> None:
    """Refresh TENANT's tokens now, whatever its status and backoff."""
    answer = session.api().call("POST", path("tenants", tenant, "refresh")).json()
    if as_json:
        print_json(answer)
        return
    say(f"Refreshed {tenant}: {answer.get('status')}.")
    console().print(render.fields_table(answer, render.PAIRING_FIELDS))


@tenants.command("delete", epilog=EXIT_CODES)
@click.argument("tenant")
@click.option("--yes", is_flag=True, help="Do not ask first (for scripts).")
@pass_session
def tenants_delete(session: Session, tenant: str, yes: bool) -> None:
    """Forget TENANT's pairing and its tokens."""
    if not yes:
        click.confirm(f"Forget the pairing of {tenant} and its tokens?", abort=True, err=True)
    session.api().call("DELETE", path("tenants", tenant), expect=(204,))
    say(f"Deleted the pairing of {tenant}.")


# --- data --------------------------------------------------------------------------------------------


@cli.command(epilog=EXIT_CODES)
@click.argument("tenant")
@json_option
@pass_session
def folders(session: Session, tenant: str, as_json: bool) -> None:
    """List the folders the customer granted TENANT, as Sage X3 returns them."""
    answer = session.api().call("GET", path("tenants", tenant, "folders")).json()
    if as_json:
        print_json(answer)
    else:
        console().print(render.folders_table(answer))


@cli.group(epilog=EXIT_CODES)
def files() -> None:
    """The files Sage X3 delivered into a granted folder."""


@files.command("list", epilog=EXIT_CODES)
@click.argument("tenant")
@click.argument("folder")
@json_option
@pass_session
def files_list(session: Session, tenant: str, folder: str, as_json: bool) -> None:
    """List the files in TENANT's FOLDER (every page)."""
    listed = session.api().pages(path("tenants", tenant, "folders", folder, "files"), "files")
    if as_json:
        print_json({"files": listed})
    elif listed:
        console().print(render.files_table(listed))
    else:
        say(f"No files in {folder}.")


@files.command("download", epilog=EXIT_CODES)
@click.argument("tenant")
@click.argument("folder")
@click.argument("filename")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Where to save it (a file or a folder)."
)
@click.option("--force", is_flag=True, help="Replace a file that is already there.")
@pass_session
def files_download(
    session: Session, tenant: str, folder: str, filename: str, output: Path | None, force: bool
) -> None:
    """Download FILENAME from TENANT's FOLDER: asks for its link, then fetches it (unsigned)."""
    name = Path(filename).name
    if name in ("", ".", ".."):
        raise click.BadParameter("is not a file name.", param_hint="FILENAME")
    destination = output if output is not None else Path(name)
    if destination.is_dir():
        destination = destination / name
    if destination.exists() and not force:
        raise CliError(f"{destination} already exists: say --force to replace it, or -o elsewhere.")
    api = session.api()
    link = api.call("GET", path("tenants", tenant, "folders", folder, "files", filename)).json()
    count = transfer.download(api.http, link["url"], destination, console(stderr=True))
    click.echo(str(destination))
    say(f"Saved {count} bytes; delete it at Sage X3 once processed (x3link files delete).")


@files.command("delete", epilog=EXIT_CODES)
@click.argument("tenant")
@click.argument("folder")
@click.argument("filename")
@click.option("--yes", is_flag=True, help="Do not ask first (for scripts).")
@pass_session
def files_delete(session: Session, tenant: str, folder: str, filename: str, yes: bool) -> None:
    """Delete FILENAME from TENANT's FOLDER at Sage X3, once downloaded."""
    if not yes:
        click.confirm(f"Remove {filename} (folder {folder}) at Sage X3 for good?", abort=True, err=True)
    session.api().call("DELETE", path("tenants", tenant, "folders", folder, "files", filename), expect=(204,))
    say(f"Deleted {filename} from {folder}.")


@cli.command(epilog=EXIT_CODES)
@click.argument("tenant")
@click.argument("folder")
@click.argument("source", metavar="PATH", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", metavar="FILENAME", help="The file's name at Sage X3 (PATH's own name else).")
@json_option
@pass_session
def upload(session: Session, tenant: str, folder: str, source: Path, name: str | None, as_json: bool) -> None:
    """Upload the file at PATH into TENANT's FOLDER: asks for an upload link, sends the file, prints its
    tracking id."""
    api = session.api()
    filename = name or source.name
    link = api.call(
        "POST",
        path("tenants", tenant, "folders", folder, "uploads"),
        json_body={"filename": filename},
        expect=(201,),
    ).json()
    count = transfer.upload(api.http, link["upload_url"], source, console(stderr=True))
    if as_json:
        print_json(link)
        return
    click.echo(link["tracking_id"])
    follow = f"x3link uploads show {tenant} {link['tracking_id']}"
    say(f"Sent {count} bytes as {filename}; follow Sage's scan with: {follow}")


@cli.group(epilog=EXIT_CODES)
def uploads() -> None:
    """Sage X3's tracking of uploaded files."""


@uploads.command("show", epilog=EXIT_CODES)
@click.argument("tenant")
@click.argument("tracking_id")
@json_option
@pass_session
def uploads_show(session: Session, tenant: str, tracking_id: str, as_json: bool) -> None:
    """Show how Sage X3 got on with the upload TRACKING_ID of TENANT."""
    answer = session.api().call("GET", path("tenants", tenant, "uploads", tracking_id)).json()
    if as_json:
        print_json(answer)
    else:
        console().print(render.fields_table(answer, render.UPLOAD_FIELDS))


# --- operations --------------------------------------------------------------------------------------


@cli.command(epilog=EXIT_CODES)
@click.argument("tenant")
@click.option(
    "--limit", type=click.IntRange(1, 100), default=50, show_default=True, help="At most this many entries."
)
@json_option
@pass_session
def activity(session: Session, tenant: str, limit: int, as_json: bool) -> None:
    """Show TENANT's recent history, newest first: lifecycle changes, refreshes, refusals, files."""
    answer = (
        session.api().call("GET", path("tenants", tenant, "activity"), query={"limit": str(limit)}).json()
    )
    if as_json:
        print_json(answer)
    elif answer.get("activity"):
        console().print(render.activity_table(answer["activity"]))
    else:
        say(f"No activity for {tenant} (entries are kept for ActivityRetentionDays).")


@cli.group(invoke_without_command=True, epilog=EXIT_CODES)
@click.option("--status", type=click.Choice(LINK_STATUSES), help="Only the links with this status.")
@json_option
@click.pass_context
def links(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """List the pairing links issued (every page), newest first, or revoke one with a command below."""
    if ctx.invoked_subcommand is not None:
        return
    session = ctx.find_object(Session)
    assert session is not None
    listed = session.api().pages("/pairings", "pairings", {"status": status} if status else None)
    if as_json:
        print_json({"pairings": listed})
    elif listed:
        console().print(render.links_table(listed))
    else:
        say(f"No {status} pairing links." if status else "No pairing links.")


@links.command("revoke", epilog=EXIT_CODES)
@click.argument("link_id", metavar="ID")
@pass_session
def links_revoke(session: Session, link_id: str) -> None:
    """Revoke the pairing link ID (as `x3link links` lists it), so that it never opens."""
    session.api().call("DELETE", path("pairings", link_id), expect=(204,))
    say(f"Revoked pairing link {link_id}: it no longer opens.")


@cli.group(invoke_without_command=True, epilog=EXIT_CODES)
@click.option(
    "--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="At most this many."
)
@json_option
@click.pass_context
def runs(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List the recent keep-alive runs, newest first, or show one with a command below."""
    if ctx.invoked_subcommand is not None:
        return
    session = ctx.find_object(Session)
    assert session is not None
    listed = session.api().call("GET", "/keep-alive/runs", query={"limit": str(limit)}).json()
    if as_json:
        print_json(listed)
    elif listed.get("runs"):
        console().print(render.runs_table(listed["runs"]))
    else:
        say("No keep-alive runs (they are kept 30 days).")


@runs.command("show", epilog=EXIT_CODES)
@click.argument("run_id", metavar="ID")
@json_option
@pass_session
def runs_show(session: Session, run_id: str, as_json: bool) -> None:
    """Show keep-alive run ID's report: its counts, and the failures it names."""
    answer = session.api().call("GET", path("keep-alive", "runs", run_id)).json()
    if as_json:
        print_json(answer)
        return
    failures = answer.get("failures") or []
    console().print(
        render.fields_table({k: v for k, v in answer.items() if k != "failures"}, render.RUN_FIELDS)
    )
    if failures:
        console().print(render.failures_table(failures))


# The local web console lives in its own package (x3link_cli/console).
cli.add_command(console_command)
# A deployed stack's health, a finding a sentence (cli/x3link_cli/doctor.py).
cli.add_command(doctor)
# The Sage X3 emulator of `make run`, steered from the shell (its own module: cli/x3link_cli/emulator.py).
cli.add_command(emulator_group)
# X3's GraphQL API (cli/x3link_cli/live.py).
cli.add_command(graphql_command)


def main() -> None:
    """The console script."""
    cli(prog_name="x3link")

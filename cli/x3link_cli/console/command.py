"""`x3link console`: finds the API as every command does, serves the console on 127.0.0.1 until Ctrl-C,
and prints the one address that opens it (with this run's token)."""

from __future__ import annotations

import secrets
import signal
from types import FrameType
from typing import TYPE_CHECKING, Protocol

import click

from x3link_cli.errors import CliError

if TYPE_CHECKING:
    from x3link_cli.client import Api

EPILOG = (
    "Exit codes: 0 stopped with Ctrl-C; 1 the API could not be found, or the port could not be taken (one "
    "sentence on stderr); 2 a usage error (an unknown option or value)."
)


class ApiSource(Protocol):
    """The global options' session (x3link_cli.main.Session): the API, found on first use."""

    def api(self) -> Api: ...


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


@click.command("console", epilog=EPILOG)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="The port on 127.0.0.1 to serve it on (0: a free one).",
)
@click.option("--no-open", is_flag=True, help="Print the address only; do not open a browser.")
@click.pass_obj
def console_command(session: ApiSource, port: int, no_open: bool) -> None:
    """Serve a web console on 127.0.0.1: the pairings and their status, the pending links, a pairing's
    activity, the keep-alive runs, and buttons to create a link, retry, revoke and delete.

    Every call it makes is signed as the other commands sign theirs. It prints the address to open, with a
    token made for this run: only a page opened from that address can drive it.
    """
    import webbrowser  # the server and the browser only when the console runs: other commands start faster

    from x3link_cli.console.server import ConsoleServer

    api = session.api()  # fails here, in one sentence, when there is no API to talk to
    try:
        server = ConsoleServer(api, api.target.url, secrets.token_urlsafe(32), port)
    except OSError as exc:
        raise CliError(f"Could not listen on 127.0.0.1:{port} ({exc.strerror}).") from None
    url = server.console.url
    click.echo(url)
    click.echo(f"The console of {api.target.url}: open the address above. Ctrl-C stops it.", err=True)
    if not no_open:
        webbrowser.open(url)
    signal.signal(signal.SIGTERM, _stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("Console stopped.", err=True)
    finally:
        server.server_close()

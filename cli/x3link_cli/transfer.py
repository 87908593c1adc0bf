"""Moving a file's bytes over a presigned link, unsigned (the link's own query is its credential), with a
progress bar. Neither a link nor its query ever goes into a message."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import urllib3
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from x3link_cli.errors import CliError, transfer_error, unreachable

CHUNK = 256 * 1024
# A large file may take long; a stalled connection still ends.
TIMEOUT = urllib3.Timeout(connect=10.0, read=120.0)


def progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=not console.is_terminal,
    )


def download(http: urllib3.PoolManager, url: str, destination: Path, console: Console) -> int:
    """Stream the link's body into `destination` (through a temporary file beside it, so a failed
    download leaves nothing half-written); the byte count."""
    try:
        response = http.request("GET", url, preload_content=False, retries=False, timeout=TIMEOUT)
    except urllib3.exceptions.HTTPError as exc:
        raise CliError(unreachable(url, exc)) from None
    partial = destination.with_name(f".{destination.name}.part")
    received = 0
    try:
        if response.status != 200:
            raise CliError(transfer_error(response.status, response.read(), "download"))
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with progress(console) as bar, partial.open("wb") as handle:
            task = bar.add_task(destination.name, total=total)
            for chunk in response.stream(CHUNK):
                handle.write(chunk)
                received += len(chunk)
                bar.advance(task, len(chunk))
        if total is not None and received != total:
            raise CliError(f"The download stopped after {received} of {total} bytes: try again.")
        partial.replace(destination)
    except urllib3.exceptions.HTTPError:
        # urllib3 checks Content-Length itself: a connection closed early ends up here.
        raise CliError("The download stopped before its end: try again.") from None
    finally:
        response.release_conn()
        partial.unlink(missing_ok=True)
    return received


def _chunks(source: Path, bar: Progress, task: TaskID) -> Iterator[bytes]:
    with source.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            bar.advance(task, len(chunk))
            yield chunk


def upload(http: urllib3.PoolManager, url: str, source: Path, console: Console) -> int:
    """PUT the file's raw bytes to the link, with its length (presigned S3 PUTs take no chunked body);
    the byte count. Sent once: a failed upload is asked for again by the operator."""
    total = os.path.getsize(source)
    with progress(console) as bar:
        task = bar.add_task(source.name, total=total)
        try:
            response = http.request(
                "PUT",
                url,
                body=_chunks(source, bar, task),
                headers={"Content-Length": str(total)},
                retries=False,
                timeout=TIMEOUT,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise CliError(unreachable(url, exc)) from None
    if response.status not in (200, 201, 204):
        raise CliError(transfer_error(response.status, response.data, "upload"))
    return total

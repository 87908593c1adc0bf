"""`python -m local.sagex3_emulator`: serve the emulator until SIGINT or SIGTERM.

Why: people and `make run` need the gateway as a process, one consecutive port per region.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from .emulator import DEFAULT_REGIONS, Emulator


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(prog="python -m local.sagex3_emulator", description=__doc__)
    parser.add_argument("--regions", default=",".join(DEFAULT_REGIONS), help="comma-separated region names")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=8100, help="first region's port, the next ones follow (0 = any)"
    )
    parser.add_argument("--client-id", default="demo-app")
    parser.add_argument("--client-secret", default="demo-secret")
    parser.add_argument(
        "--redirect-uri", action="append", default=None, help="allowed redirect URI (repeat; default: any)"
    )
    parser.add_argument(
        "--control-port",
        type=int,
        default=None,
        help="also serve the control API (x3link emulator's) on 127.0.0.1:PORT (0 = any)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Start, print `<region> <base url>` per region, wait for a signal, stop."""
    args = parse_args(argv)
    regions = [name.strip() for name in args.regions.split(",") if name.strip()]
    ports = {region: (args.port + index if args.port else 0) for index, region in enumerate(regions)}
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emulator = Emulator(
        regions=regions,
        host=args.host,
        ports=ports,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uri,
    ).start()
    control = None
    try:
        for region in regions:
            print(f"{region} {emulator.base_url(region)}", flush=True)
        if args.control_port is not None:
            from .control import ControlServer

            control = ControlServer(emulator, port=args.control_port).start()
            print(f"control {control.url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        if control is not None:
            control.stop()
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

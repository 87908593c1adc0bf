"""What a Lambda init builds, kept out of the cycle collector's walks.

Init builds what lives as long as the execution environment: the layer's modules a handler imports, the
SDK's modules and service models, the clients, the services. Python's cycle collector would walk those
hundreds of thousands of objects once or twice more, in init or in an early request, and find no garbage
there: up to 70 ms of a cold start (`make bench`, docs/deploy.md "Init against the floor"). So on Lambda
they are built with the collector paused, then frozen (`gc.freeze`): no later collection looks at them.

The pause starts when `x3link.wiring` is imported (`pause_for_init`: every handler imports it before the
rest of the layer) and ends when the handler's `wiring.prime` block ends, even if a build raises; every
handler calls `prime` at import (tests/unit/test_prime_collector.py holds each functions/*/app.py to it).
Frozen objects are still freed when their last reference goes (a data key dropped before a snapshot is);
only a cycle among them stays, and init leaves few (about 1,600 objects in a keeper's init, measured).
Elsewhere (tests, `make run`: one long process, many stacks) the collector is left alone.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager

RUNTIME_API = "AWS_LAMBDA_RUNTIME_API"  # set by Lambda in every execution environment, and only there


class _InitPause:
    """Whether this module paused the collector for init and the next `long_lived` block must resume it
    (never a collector someone else switched off)."""

    held = False


def pause_for_init() -> None:
    """On Lambda, pause the collector from now until the end of the next `long_lived` block (a handler's
    `wiring.prime`), so that the modules imported on the way are frozen with what it builds."""
    if RUNTIME_API in os.environ and gc.isenabled():
        gc.disable()
        _InitPause.held = True


@contextmanager
def long_lived() -> Iterator[None]:
    """On Lambda, what the block builds (and what was imported since `pause_for_init`) is built
    uncollected and then frozen, and the collector runs again after it, whatever the block raised;
    elsewhere, nothing changes."""
    frozen = RUNTIME_API in os.environ and (gc.isenabled() or _InitPause.held)
    if frozen:
        gc.disable()
    try:
        yield
    finally:
        if frozen:
            _InitPause.held = False
            gc.freeze()
            gc.enable()

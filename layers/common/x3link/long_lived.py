"""What a Lambda init builds, kept out of the cycle collector's walks.

Init builds what lives as long as the execution environment: the SDK's modules and service models, the
clients, the services. Python's cycle collector would walk those hundreds of thousands of objects once or
twice more, in init or in an early request, and find no garbage there: up to 70 ms of a cold start
(`make bench`, docs/deploy.md "Init against the floor"). So on Lambda they are built with the collector
paused, then frozen (`gc.freeze`): no later collection looks at them. Frozen objects are still freed when
their last reference goes (a data key dropped before a snapshot is); only a cycle among them stays, and init
leaves few (about 1,600 objects in a keeper's init, measured). Elsewhere (tests, `make run`: one long process,
many stacks) the collector is left alone.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager

RUNTIME_API = "AWS_LAMBDA_RUNTIME_API"  # set by Lambda in every execution environment, and only there


@contextmanager
def long_lived() -> Iterator[None]:
    """On Lambda, what the block builds is built uncollected and then frozen; elsewhere, nothing changes."""
    frozen = RUNTIME_API in os.environ and gc.isenabled()
    if frozen:
        gc.disable()
    try:
        yield
    finally:
        if frozen:
            gc.freeze()
            gc.enable()

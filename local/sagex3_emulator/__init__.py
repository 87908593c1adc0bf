"""A faithful local emulator of the Sage X3 cloud API gateways (pairing, tokens, folders, files).

Why: the app under test must survive every behaviour Sage leaves undocumented; this emulator can be
switched between them, and injects failures, without a Sage account. Standard library only.
"""

from .emulator import Emulator
from .http_types import ApiError
from .models import Customer
from .pairing import DecisionError

__all__ = ["ApiError", "Customer", "DecisionError", "Emulator"]

"""A faithful local emulator of the Sage X3 cloud API gateways (pairing, tokens, folders, files).

Why: the app under test must survive every behaviour Sage leaves undocumented; this emulator can be
switched between them, and injects failures, without a Sage account. Served by werkzeug (which moto brings).
"""

from .emulator import Emulator
from .models import Customer
from .pairing import DecisionError
from .web import ApiError

__all__ = ["ApiError", "Customer", "DecisionError", "Emulator"]

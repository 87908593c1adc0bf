"""The credentials the local gateway accepts: the SigV4 and gateway tests share them."""

from __future__ import annotations

from local import sigv4

CREDENTIALS = sigv4.Credentials("testing", "testing", "us-east-1")

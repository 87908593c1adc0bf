"""`python -m bench`, as `make bench` runs it (with layers/common on PYTHONPATH)."""

from __future__ import annotations

from bench.bench import main

main()

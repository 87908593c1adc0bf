"""Exports delivered to the app's bucket exactly once: the sync switch and poll, the queue's orders, the
worker, the bucket and the ledger. Imports `data`, `refresh` and the floors below them."""

"""A pairing and its tokens at rest: the model everyone reads (`model`), the table's records and items, and
the sealed writes (`store`, `sealing`). Imports the root, `aws`, `web` and `sage`."""

"""The outbox: files the app drops in its bucket, checked by pure rules, sent to Sage and followed. Imports
`data`, `refresh` and the floors below them."""

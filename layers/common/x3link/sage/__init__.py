"""Sage X3's protocol: OAuth requests and answers as pure functions, the one HTTP client that speaks to
Sage, the callback's shapes, signed notifications, and the app's own credentials. Imports the root,
`aws` and `web`."""

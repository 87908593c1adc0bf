"""`x3link console`: a web page on 127.0.0.1 that shows and steers the pairings through the API, each call
signed by the CLI's own signer, so the page needs no login of its own.

`routes` says which API calls the page may have passed on, `guard` who may drive the page's server (a
per-run token, this host, this origin), `server` serves the page and passes those calls on, `command` is
the click command. The page itself is `static/` (HTML, CSS and plain JavaScript: no build step, no CDN).
"""

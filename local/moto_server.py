"""The embedded AWS: moto in server mode on 127.0.0.1, so the handlers' boto3 clients talk HTTP to it
exactly as they would to AWS, and `make invoke` in another process reaches the same state."""

from __future__ import annotations

import http.client
import logging

from moto.server import ThreadedMotoServer


class EmbeddedMoto:
    """One moto server; `url` is what AWS_ENDPOINT_URL becomes."""

    def __init__(self, host: str = "127.0.0.1", port: int = 4566) -> None:
        self._server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> EmbeddedMoto:
        # Werkzeug logs every AWS call at INFO on stderr; the stack's own progress lines matter more.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        self.host, self.port = self._server.get_host_and_port()
        # moto's backends live in this process: a second stack in it starts from an empty account.
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request("POST", "/moto-api/reset")
            connection.getresponse().read()
        finally:
            connection.close()
        return self

    def stop(self) -> None:
        self._server.stop()

"""`x3link console`'s HTTP server on a loopback socket, the API behind it scripted: what the stdlib server
around `Console.respond` adds (bodies read by length and bounded, headers judged once, the page's security
headers, persistent connections across a 204)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.support.console import ScriptedApi
from x3link_cli.client import Answer
from x3link_cli.console.server import MAX_BODY, ConsoleServer
from x3link_cli.main import cli

TOKEN = "a-token-made-for-this-test"


class Served:
    def __init__(self, api: ScriptedApi) -> None:
        self.api = api
        self.server = ConsoleServer(api, "http://127.0.0.1:3000", TOKEN)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def own(self) -> dict[str, str]:
        return {"Host": f"127.0.0.1:{self.port}", "X-Console-Token": TOKEN}

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def served() -> Iterator[Served]:
    running = Served(ScriptedApi())
    try:
        yield running
    finally:
        running.stop()


def answer(response: http.client.HTTPResponse) -> tuple[int, Any]:
    content = response.read()
    return response.status, json.loads(content) if content else None


def test_it_listens_on_loopback_only(served: Served) -> None:
    assert served.server.server_address[0] == "127.0.0.1"
    assert served.server.console.url == f"http://127.0.0.1:{served.port}/#token={TOKEN}"


def test_the_page_comes_with_headers_that_keep_other_code_out(served: Served) -> None:
    connection = served.connection()
    connection.request("GET", "/", headers={"Host": f"localhost:{served.port}"})
    response = connection.getresponse()
    page = response.read().decode()

    assert response.status == 200
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    policy = response.getheader("Content-Security-Policy") or ""
    assert (
        "default-src 'none'" in policy
        and "script-src 'self'" in policy
        and "frame-ancestors 'none'" in policy
    )
    assert response.getheader("X-Content-Type-Options") == "nosniff"
    assert response.getheader("Referrer-Policy") == "no-referrer"
    assert '<script src="/console.js" defer></script>' in page
    assert "{{api_url}}" not in page and "http://127.0.0.1:3000" in page


def test_calls_keep_one_connection_across_a_204(served: Served) -> None:
    served.api.answers += [Answer(204, b""), Answer(200, b'{"tenants": []}')]
    connection = served.connection()

    connection.request("DELETE", "/api/tenants/acme", headers=served.own)
    deleted = answer(connection.getresponse())
    connection.request("GET", "/api/tenants", headers=served.own)
    listed = answer(connection.getresponse())

    assert (deleted, listed) == ((204, None), (200, {"tenants": []}))
    assert [sent["route"] for sent in served.api.sent] == ["/tenants/acme", "/tenants"]


def test_a_body_over_the_limit_is_refused_unread(served: Served) -> None:
    connection = served.connection()
    headers = {**served.own, "Content-Type": "application/json", "Content-Length": str(MAX_BODY + 1)}
    connection.request("POST", "/api/pairings", body=b"{" + b" " * MAX_BODY, headers=headers)
    response = connection.getresponse()

    assert answer(response)[0] == 413
    assert response.getheader("Connection") == "close"
    assert served.api.sent == []


def test_a_chunked_body_is_refused(served: Served) -> None:
    connection = served.connection()
    connection.putrequest("POST", "/api/pairings", skip_host=True)
    for name, value in {
        **served.own,
        "Content-Type": "application/json",
        "Transfer-Encoding": "chunked",
    }.items():
        connection.putheader(name, value)
    connection.endheaders()
    connection.send(b"2\r\n{}\r\n0\r\n\r\n")

    assert answer(connection.getresponse())[0] == 411
    assert served.api.sent == []


def test_a_host_or_token_named_twice_is_refused(served: Served) -> None:
    for name, second in (("Host", "rebound.attacker.example"), ("X-Console-Token", "another")):
        connection = served.connection()
        connection.putrequest("GET", "/api/tenants", skip_host=True)
        for header, value in served.own.items():
            connection.putheader(header, value)
        connection.putheader(name, second)
        connection.endheaders()
        status, said = answer(connection.getresponse())
        assert (status, said["error"]) == (403, "ambiguous_headers")
    assert served.api.sent == []


def test_a_port_already_taken_is_one_sentence_and_exit_code_1(tmp_path: Path) -> None:
    stack_file = tmp_path / "stack.json"
    found = {"pid": os.getpid(), "api_url": "http://127.0.0.1:3000", "access_key_id": "testing"}
    stack_file.write_text(json.dumps({**found, "secret_access_key": "testing"}))  # as `make run` writes it
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = CliRunner(mix_stderr=False).invoke(
            cli, ["console", "--no-open", "--port", str(port)], env={"LOCAL_STACK_FILE": str(stack_file)}
        )

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == f"Error: Could not listen on 127.0.0.1:{port} (Address already in use).\n"

"""A stand-in for the CLI's `Api` behind `x3link console`: it answers from a script and keeps what the
console asked it to send, so tests see exactly what would have reached the API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from x3link_cli.client import Answer


class ScriptedApi:
    def __init__(self, *answers: Answer | Exception) -> None:
        self.answers = list(answers)
        self.sent: list[dict[str, Any]] = []

    def send(
        self,
        method: str,
        route: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        self.sent.append({"method": method, "route": route, "query": dict(query or {}), "body": body})
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

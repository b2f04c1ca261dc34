"""The questions between workers over HTTP: ``POST /partials`` on the worker that owns the partitions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import aiohttp
import msgspec

from metrics.exceptions import Unavailable
from metrics.questions import Question

TIMEOUT_S = 30.0


def questions_of(body: Any) -> list[Question]:
    """The questions of a request body (JSON arrays back to tuples, nested parts as they are)."""
    return [tuple(q) for q in body["questions"]]


class HttpTransport:
    """Asks other workers at their advertised URL; a worker that does not answer makes the answer unavailable."""

    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def ask(self, url: str, partitions: list[int], questions: Sequence[Question]) -> list[Any]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        payload = msgspec.json.encode({"partitions": partitions, "questions": list(questions)})
        try:
            async with self._session.post(f"{url}/partials", data=payload,
                                          headers={"Content-Type": "application/json"}) as resp:
                body = msgspec.json.decode(await resp.read())
        except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError) as exc:
            raise Unavailable(f"the worker at {url} (partitions {partitions}) did not answer: "
                              f"{type(exc).__name__} {exc}") from exc
        if resp.status != 200:
            raise Unavailable(f"the worker at {url} (partitions {partitions}): {body.get('error', resp.status)}")
        answers: list[Any] = body["answers"]
        return answers

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

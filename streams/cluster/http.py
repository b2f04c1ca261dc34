"""The questions between workers over HTTP: ``POST /partials`` on the worker that owns the partitions."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
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

    def __init__(self, auth_header: Mapping[str, str] | None = None, timeout_s: float = TIMEOUT_S) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        # The workers of one app share the API token: /partials is refused without it like any page.
        self.headers = {"Content-Type": "application/json", **(auth_header or {})}
        self._session: aiohttp.ClientSession | None = None

    async def ask(self, url: str, partitions: list[int], questions: Sequence[Question], session: str) -> list[Any]:
        body, status = await self._post(url, {"partitions": partitions, "questions": list(questions),
                                              "session": session}, partitions)
        if status != 200:
            raise Unavailable(f"the worker at {url} (partitions {partitions}): {body.get('error', status)}")
        answers: list[Any] = body["answers"]
        return answers

    async def release(self, url: str, session: str) -> None:
        with contextlib.suppress(Unavailable):  # its lease ends the session anyway
            await self._post(url, {"release": session}, [])

    async def _post(self, url: str, payload: dict[str, Any], partitions: list[int]) -> tuple[Any, int]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.post(f"{url}/partials", data=msgspec.json.encode(payload),
                                          headers=self.headers) as resp:
                return msgspec.json.decode(await resp.read()), resp.status
        except (aiohttp.ClientError, TimeoutError, msgspec.DecodeError) as exc:
            raise Unavailable(f"the worker at {url} (partitions {partitions}) did not answer: "
                              f"{type(exc).__name__} {exc}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

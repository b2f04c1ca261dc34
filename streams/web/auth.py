"""The optional bearer token of the worker's HTTP API: one aiohttp middleware in front of every route.

A middleware rather than a check in each page, so that a page added later (or one of Faust's) is
protected without anyone remembering to. ``/metrics`` and ``/ready`` stay open unless configured
otherwise: Prometheus scrapes and kubelet probes usually come without a token.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from core.slices import WebSettings

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
METRICS_PATHS = frozenset({"/metrics", "/faust-metrics"})
READY_PATHS = frozenset({"/ready"})
CHALLENGE = 'Bearer realm="retention-monitor"'


def authorized(header: str | None, expected: bytes) -> bool:
    """Whether an ``Authorization`` header carries the expected bearer token (compared in constant time)."""
    if not header:
        return False
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer":  # the scheme is case-insensitive (RFC 7235)
        return False
    return hmac.compare_digest(credentials.strip().encode(), expected)


def open_paths(settings: WebSettings) -> frozenset[str]:
    """The paths that answer without a token."""
    return (frozenset() if settings.protect_metrics else METRICS_PATHS) | (
        frozenset() if settings.protect_ready else READY_PATHS)


def token_middlewares(settings: WebSettings) -> list[Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]]:
    """The middleware that refuses requests without the token with 401, or none when no token is set."""
    if not settings.token:
        return []
    expected, public = settings.token.encode(), open_paths(settings)

    @web.middleware
    async def require_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        if request.path in public or authorized(header, expected):
            return await handler(request)
        challenge, error = CHALLENGE, "this API needs the header Authorization: Bearer <api_token>"
        if header:  # RFC 6750: tell a client with a wrong token apart from one that sent none
            challenge, error = f'{CHALLENGE}, error="invalid_token"', "the bearer token is not the api_token"
        return web.json_response({"error": error}, status=401, headers={"WWW-Authenticate": challenge})

    return [require_token]


"""Reading a worker's JSON endpoints from the command line, with one-line errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from retention_monitor.exceptions import BadRequest, QueryError

UNAUTHORIZED = ("the worker refused the request without the right bearer token (401); set api_token or "
                "api_token_file (RETENTION_API_TOKEN) to the worker's token")


def get_json(url: str, path: str, params: dict[str, Any], timeout: float = 10.0,
             headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``GET {url}{path}?{params}`` of a worker (``headers``: its bearer token, see
    :attr:`core.slices.WebSettings.auth_header`); raises :class:`QueryError` with a one-line reason."""
    request = urllib.request.Request(f"{url}{path}?{urllib.parse.urlencode(params)}", headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            body: dict[str, Any] = json.loads(resp.read())
            return body
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise BadRequest(f"{url}{path}: {UNAUTHORIZED}") from exc
        try:
            detail = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            detail = exc.reason
        refused = BadRequest if 400 <= exc.code < 500 else QueryError
        raise refused(f"{url}{path}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise QueryError(f"no worker answers at {url} ({exc}); start one with `retention-monitor worker`") from exc

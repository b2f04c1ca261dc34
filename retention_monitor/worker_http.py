"""Reading a worker's JSON endpoints from the command line, with one-line errors."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from retention_monitor.exceptions import BadRequest, QueryError


def get_json(url: str, path: str, params: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """``GET {url}{path}?{params}`` of a worker; raises :class:`QueryError` with a one-line reason."""
    try:
        with urllib.request.urlopen(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=timeout) as resp:
            body: dict[str, Any] = json.loads(resp.read())
            return body
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("error", exc.reason)
        except ValueError:
            detail = exc.reason
        refused = BadRequest if 400 <= exc.code < 500 else QueryError
        raise refused(f"{url}{path}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise QueryError(f"no worker answers at {url} ({exc}); start one with `retention-monitor worker`") from exc

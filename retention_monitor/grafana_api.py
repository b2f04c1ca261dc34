"""Pushing dashboards to a running Grafana over its HTTP API (``retention-monitor dashboards push``)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

from retention_monitor.exceptions import GrafanaError

T = TypeVar("T")


def push(url: str, token: str | None, dashboards: dict[str, dict[str, Any]], folder: str | None = None,
         timeout: float = 10.0) -> list[str]:
    """Create or update ``dashboards`` in the Grafana at ``url`` (overwrite), in the folder titled
    ``folder`` (created when missing; None: Grafana's General folder); returns the uids pushed.

    Raises :class:`GrafanaError` (one line, naming ``url``) when Grafana is unreachable, refuses the
    token (401/403) or rejects a folder or dashboard.
    """
    api = GrafanaApi.from_url(url, credential=token, timeout=timeout)
    folder_uid = _folder_uid(api, url, folder) if folder else None
    pushed = []
    for dashboard in dashboards.values():
        uid = dashboard["uid"]
        payload: dict[str, Any] = {"dashboard": dashboard, "overwrite": True,
                                   "message": "retention-monitor dashboards push"}
        if folder_uid is not None:
            payload["folderUid"] = folder_uid
        _call(url, f"dashboard {uid}", partial(api.dashboard.update_dashboard, payload))
        pushed.append(uid)
    return pushed


def _folder_uid(api: GrafanaApi, url: str, title: str) -> str:
    """The uid of the top-level folder titled ``title``, created when there is none. Matched by title,
    not by a uid of ours, so a folder someone made by hand is reused rather than duplicated."""
    folders: list[dict[str, Any]] = _call(url, "the folder list", api.folder.get_all_folders)
    for found in folders:
        if found.get("title") == title:
            return str(found["uid"])
    created: dict[str, Any] = _call(url, f"folder {title!r}", partial(api.folder.create_folder, title))
    return str(created["uid"])


def _call(url: str, what: str, request: Callable[[], T]) -> T:
    """``request()``, with Grafana's and the network's errors as one-line :class:`GrafanaError`."""
    try:
        return request()
    except GrafanaUnauthorizedError as exc:
        raise GrafanaError(f"Grafana at {url} refused the credentials (HTTP 401); check --token") from exc
    except GrafanaClientError as exc:
        if exc.status_code == 403:
            raise GrafanaError(f"Grafana at {url} does not allow this token to write {what} (HTTP 403); use a "
                               "token with the Editor or Admin role") from exc
        raise GrafanaError(f"Grafana at {url} rejected {what}: {_one_line(exc)}") from exc
    except GrafanaException as exc:
        raise GrafanaError(f"Grafana at {url} failed on {what}: {_one_line(exc)}") from exc
    except OSError as exc:  # niquests' ConnectionError and friends are OSErrors
        raise GrafanaError(f"Grafana at {url} is unreachable ({type(exc).__name__})") from exc


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]

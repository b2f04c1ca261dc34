"""The bearer-token check of the worker's HTTP API, and the settings behind it."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load_settings, redacted
from core.errors import ConfigError
from core.slices import WebSettings
from streams.web.auth import authorized, open_paths, token_middlewares

TOKEN = "s3cret-token-0123456789"


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),  # the scheme is case-insensitive
        (f"Bearer {TOKEN} ", True),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Basic {TOKEN}", False),
        (TOKEN, False),
        ("Bearer ", False),
        ("", False),
        (None, False),
    ],
)
def test_only_the_exact_bearer_token_is_authorized(header: str | None, ok: bool) -> None:
    assert authorized(header, TOKEN.encode()) is ok


def test_metrics_and_ready_are_open_unless_protected() -> None:
    assert open_paths(WebSettings("127.0.0.1", 6066, token=TOKEN)) == {"/metrics", "/faust-metrics", "/ready"}
    assert open_paths(WebSettings("127.0.0.1", 6066, token=TOKEN, protect_metrics=True)) == {"/ready"}
    assert open_paths(WebSettings("127.0.0.1", 6066, token=TOKEN, protect_metrics=True, protect_ready=True)) == set()


def test_no_token_no_middleware_and_no_header() -> None:
    web = WebSettings("127.0.0.1", 6066)
    assert token_middlewares(web) == []
    assert web.auth_header == {}
    assert WebSettings("127.0.0.1", 6066, token=TOKEN).auth_header == {"Authorization": f"Bearer {TOKEN}"}


def test_token_from_env_or_file_and_flags_parsed(tmp_path: Path) -> None:
    assert load_settings(env={"RETENTION_API_TOKEN": TOKEN}).settings.web.token == TOKEN
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")  # a Secret mounted as a file often ends with a newline
    loaded = load_settings(env={"RETENTION_API_TOKEN_FILE": str(secret),
                                "RETENTION_API_TOKEN_PROTECTS_METRICS": "true",
                                "RETENTION_API_TOKEN_PROTECTS_READY": "no"})
    web = loaded.settings.web
    assert (web.token, web.protect_metrics, web.protect_ready) == (TOKEN, True, False)


def test_the_token_is_never_shown() -> None:
    assert redacted("api_token", TOKEN) == "set"
    assert redacted("api_token", "") == "unset"
    with pytest.raises(ConfigError) as err:
        load_settings(env={"RETENTION_API_TOKEN": "short secret"})
    assert str(err.value) == "RETENTION_API_TOKEN='set': must be 16-4096 characters of [A-Za-z0-9._~+/=-]"


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"RETENTION_API_TOKEN_PROTECTS_METRICS": "maybe"}, "RETENTION_API_TOKEN_PROTECTS_METRICS='maybe': must be "
                                                            "true or false"),
        ({"RETENTION_API_TOKEN_FILE": "/nonexistent/token"}, "RETENTION_API_TOKEN_FILE='/nonexistent/token': no such"),
        ({"RETENTION_API_TOKEN_FILE": __file__, "RETENTION_API_TOKEN": TOKEN}, "not both"),
    ],
)
def test_bad_token_settings_are_one_line(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=None) as err:
        load_settings(env=env)
    assert needle in str(err.value)
    assert TOKEN not in str(err.value)

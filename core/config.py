"""Loading the settings: one TOML file plus ``RETENTION_*`` environment variables for every setting.

Precedence: built-in default < config file < environment. Every bad value raises a
:class:`ConfigError` whose one-line message names the setting, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from core.checks import run_checks
from core.errors import ConfigError
from core.settings import Settings

ENV_PREFIX = "RETENTION_"
CONFIG_ENV = "RETENTION_CONFIG"
STACK_HOME_ENV = "RETENTION_STACK_HOME"  # where `stack up` keeps the local services (not a worker setting)
# Set to 1 where an env file shared with other tools holds RETENTION_* variables this version does not know.
ALLOW_UNKNOWN_ENV = "RETENTION_ALLOW_UNKNOWN"
NOT_SETTINGS = frozenset({CONFIG_ENV, STACK_HOME_ENV, ALLOW_UNKNOWN_ENV})
DEFAULT_CONFIG_FILE = "retention-monitor.toml"
MASK = "***"


def redact_url(url: str) -> str:
    """``url`` with the password of its user info (``scheme://user:PASSWORD@host``) replaced by ``***``.

    An ``@`` that does not parse as user info (a mistyped ``redis:/:PASSWORD@host``) hides everything
    before it: showing too little is better than echoing a password.
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        parts, password = None, None
    if parts is not None and password is not None:
        userinfo, _, hostport = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}:{MASK}@{hostport}"))
    if "@" not in url or (parts is not None and "@" in parts.netloc):  # no user info, or a user without password
        return url
    scheme, colon, _ = url.partition(":")
    return f"{scheme}{colon}{MASK}{url[url.rindex('@'):]}" if colon else MASK + url[url.rindex("@"):]


def redacted(name: str, value: Any) -> Any:
    """What may be shown of setting ``name``: ``***`` for a set password, ``set``/``unset`` for the API
    token, URLs without their password."""
    if name == "api_token":
        return "set" if value else "unset"
    if name.endswith("_password"):
        return MASK if value else value
    if name.endswith("_url") and isinstance(value, str):
        return redact_url(value)
    return value

@dataclass(frozen=True)
class LoadedSettings:
    """Settings plus where each value came from (``default``, the file path, or the env variable)."""

    settings: Settings
    sources: dict[str, str]


def env_name(setting: str) -> str:
    return ENV_PREFIX + setting.upper()


def load_settings(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> LoadedSettings:
    """Load defaults, then the config file, then ``RETENTION_*`` variables, then ``overrides``."""
    environ = os.environ if env is None else env
    known = {f.name: f for f in fields(Settings)}
    values: dict[str, Any] = {}
    sources = {name: "default" for name in known}

    config_path = _config_path(path, environ)
    if config_path is not None:
        for key, value in _read_toml(config_path).items():
            if key not in known:
                raise ConfigError(f"{config_path}: unknown setting {key!r}{_closest(key, known)}")
            values[key] = value
            sources[key] = str(config_path)
    _refuse_unknown_env(environ, known)

    for name in known:
        var = env_name(name)
        if var in environ:
            values[name] = _parse_env(name, var, environ[var])
            sources[name] = var

    for name, value in (overrides or {}).items():
        if name not in known:
            raise ConfigError(f"unknown setting {name!r}")
        values[name] = value
        sources[name] = "override"

    settings = Settings(**{name: _coerce(name, value, sources[name]) for name, value in values.items()})
    validate(settings, sources)
    return LoadedSettings(settings, sources)


def _closest(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or the whole list when none is close."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else f"; allowed: {', '.join(sorted(candidates))}"


def _refuse_unknown_env(environ: Mapping[str, str], known: Iterable[str]) -> None:
    """A ``RETENTION_*`` variable that is no setting is a typo until said otherwise: silently ignoring
    ``RETENTION_REPORTING_CURRENCY`` would report in EUR without a word."""
    if environ.get(ALLOW_UNKNOWN_ENV, "").lower() in ("1", "true", "yes"):
        return
    names = {env_name(name) for name in known}
    unknown = sorted(v for v in environ if v.startswith(ENV_PREFIX) and v not in names and v not in NOT_SETTINGS)
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a setting{_closest(unknown[0], names)} "
                          f"({ALLOW_UNKNOWN_ENV}=1 ignores unknown {ENV_PREFIX}* variables)")  # fmt: skip


def _config_path(path: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {str(p)!r} does not exist")
        return p
    if CONFIG_ENV in environ:
        p = Path(environ[CONFIG_ENV])
        if not p.is_file():
            raise ConfigError(f"{CONFIG_ENV}={environ[CONFIG_ENV]}: no such config file")
        return p
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.is_file() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    # A [retention] table is accepted so the file can share space with other tools' tables.
    section = data.get("retention", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [retention] must be a table")
    return section


# Settings whose default is None take values of this type.
_NONE_DEFAULT_TYPES: dict[str, Any] = {"currency_rates": {"USD": 1.1}}


def _example(name: str) -> Any:
    default = getattr(Settings(), name)
    return _NONE_DEFAULT_TYPES[name] if default is None else default


def _parse_env(name: str, var: str, raw: str) -> Any:
    default = _example(name)
    if isinstance(default, bool | int | float | str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        kind = "a JSON object" if isinstance(default, dict) else "a JSON array"
        raise ConfigError(f"{var}={raw}: must be {kind}, e.g. {json.dumps(default)}") from exc


def _where(name: str, source: str) -> str:
    return source if source.startswith(ENV_PREFIX) else name


def _coerce(name: str, value: Any, source: str) -> Any:
    default = _example(name)
    where = _where(name, source)
    shown = redacted(name, value)
    if isinstance(default, bool):
        return _boolean(where, value, shown)
    if isinstance(default, int):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
            return int(value)
        raise ConfigError(f"{where}={shown!r}: must be an integer")
    if isinstance(default, float):
        if isinstance(value, str) and re.fullmatch(r"\d+(\.\d+)?", value.strip()):
            return float(value)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{where}={shown!r}: must be a number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}={shown!r}: must be a string")
        return value
    if isinstance(default, dict) and not isinstance(value, dict):
        raise ConfigError(f"{where}={shown!r}: must be a table/object")
    if isinstance(default, list) and not isinstance(value, list):
        raise ConfigError(f"{where}={shown!r}: must be a list")
    return value


_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


def _boolean(where: str, value: Any, shown: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{where}={shown!r}: must be true or false")


def validate(settings: Settings, sources: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ConfigError` for the first setting whose value is not allowed."""
    src = sources or {}

    def fail(name: str, value: Any, allowed: str) -> ConfigError:
        return ConfigError(f"{_where(name, src.get(name, name))}={redacted(name, value)!r}: {allowed}")

    run_checks(settings, fail)

"""``constraints.txt``: the exact version of every distribution the project and its extras pull in.

pyproject.toml declares ranges so the package installs next to others; CI (``./run``) and the image
install with ``-c constraints.txt`` so that both run exactly the versions the tests passed on. The pins
are read from the environment the tests ran in (the requirements of pyproject.toml and, through the
installed distributions' metadata, theirs), so regenerating after an upgrade records what was tested.
Requirements whose environment marker does not hold here (another Python, another platform) are left
out, so pip resolves them freely where they apply.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from retention_monitor.exceptions import UsageError

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
DEFAULT_OUTPUT = ROOT / "constraints.txt"
EXTRAS = ("dev",)  # dev includes every other extra
HEADER = (
    "# Exact versions CI and the Docker image install (pip install -c constraints.txt); pyproject.toml has ranges.\n"
    "# Generated from the tested environment by `retention-monitor deploy constraints`; do not edit.\n"
)


def pins(pyproject: Path = PYPROJECT, extras: Iterable[str] = EXTRAS) -> dict[str, str]:
    """Canonical distribution name -> installed version, for the project's requirements and theirs."""
    project = tomllib.loads(pyproject.read_text())["project"]
    own, optional = canonicalize_name(project["name"]), project.get("optional-dependencies", {})
    todo = [(text, "") for text in [*project["dependencies"], *(r for e in extras for r in optional[e])]]
    found: dict[str, str] = {}
    seen: set[tuple[str, str]] = set()
    while todo:
        text, extra = todo.pop()
        req = Requirement(text)
        if req.marker and not req.marker.evaluate({"extra": extra}):
            continue
        name = canonicalize_name(req.name)
        if name == own:  # a self-reference such as retention-monitor[report]
            todo += [(r, "") for e in sorted(req.extras) for r in optional[e]]
            continue
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            raise UsageError(f"{req.name} is required ({text}) but not installed: "
                             "pip install -c constraints.txt -e '.[dev]' first") from None
        if not req.specifier.contains(version, prereleases=True):
            raise UsageError(f"installed {req.name} {version} does not satisfy {text!r}")
        found[name] = version
        for wanted in ("", *sorted(req.extras)):
            if (name, wanted) not in seen:
                seen.add((name, wanted))
                todo += [(r, wanted) for r in metadata.requires(name) or []]
    return found


def render(found: Mapping[str, str]) -> str:
    return HEADER + "".join(f"{name}=={found[name]}\n" for name in sorted(found))


def parse(text: str) -> dict[str, str]:
    """name -> version of a constraints file's ``name==version`` lines."""
    out = {}
    for line in text.splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            out[name.strip()] = version.strip()
    return out


def differences(text: str, found: Mapping[str, str]) -> list[str]:
    """What the file ``text`` pins differently from ``found`` (empty when it is current)."""
    pinned = parse(text)
    out = [f"{n}: pinned {pinned.get(n, 'nothing')}, installed {found.get(n, 'nothing')}"
           for n in sorted(pinned.keys() | found.keys()) if pinned.get(n) != found.get(n)]
    if not out and text != render(found):
        out.append("the file is not in the generated form")
    return out

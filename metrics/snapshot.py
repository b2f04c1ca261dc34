"""Checkpoints of a KPI store: its facts and per-customer checksums, with the changelog positions
they reflect, so a restarted worker reads only the changelog written since (not all of it).

A checkpoint is a directory (``meta.json`` plus one ``.npz`` of flat numpy columns), written to a
temporary name and renamed, so a crash mid-write leaves the previous one intact. It is only valid
for the same fact definitions and settings (:func:`fingerprint`) and while the changelog entries
after it cannot have been compacted away (``max_age``).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from metrics.facts import FACTS_VERSION
from metrics.index import FactIndex
from metrics.keytable import from_arrays, to_arrays
from metrics.store import KpiStore

FORMAT = 2  # 2: checksums, customers and newest event time per partition


@dataclass
class Checkpoint:
    """What :func:`capture` takes from a store (views and copies of small tables, quickly, on the event
    loop), for :func:`write` to join and save (on a thread)."""

    meta: dict[str, Any]
    parts: dict[str, list[npt.NDArray[Any]]]


def fingerprint(settings: dict[str, Any]) -> str:
    """Of the fact definitions and of the settings facts depend on (segments, labels, currencies)."""
    relevant = {k: settings[k] for k in ("segments", "churn_reasons", "ticket_categories", "currency",
                                         "currency_rates") if k in settings}
    text = json.dumps({"facts": FACTS_VERSION, **relevant}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def capture(store: KpiStore, positions: dict[int, int], print_: str) -> Checkpoint:
    """The store's facts and, per partition, its checksums and the changelog position they reflect."""
    kinds, combos, parts = store.index.views()
    partitions = sorted(store.checksums)
    for p in partitions:
        keys, values = to_arrays(store.checksums[p])  # copies: the tables change in place
        parts |= {f"checksum_keys_{p}": [keys], f"checksum_values_{p}": [values]}
    meta = {"format": FORMAT, "fingerprint": print_, "created": time.time(), "positions": positions,
            "kinds": kinds, "combos": [list(c) for c in combos], "partitions": partitions,
            "customers": store.customer_counts, "newest": store.newest_by_partition}
    return Checkpoint(meta, parts)


def write(checkpoint: Checkpoint, directory: Path) -> None:
    """Save atomically (a temporary directory renamed over the old checkpoint)."""
    tmp = directory.with_name(directory.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # np.savez's own format, written one column at a time: only one joined column is in memory at once
    with zipfile.ZipFile(tmp / "facts.npz", "w", allowZip64=True) as archive:
        for name, arrays in checkpoint.parts.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, np.concatenate(arrays), allow_pickle=False)
    (tmp / "meta.json").write_text(json.dumps(checkpoint.meta))
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        directory.rename(old)
    tmp.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def read(directory: Path, store: KpiStore, print_: str, max_age: float) -> dict[int, int] | None:
    """Load the checkpoint into ``store``; its changelog positions, or None if there is none usable."""
    try:
        meta = json.loads((directory / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT or meta.get("fingerprint") != print_ or time.time() - meta["created"] > max_age:
        return None
    with np.load(directory / "facts.npz") as data:
        arrays = {name: data[name] for name in data.files}
    combos = [tuple(c) for c in meta["combos"]]
    partitions = [int(p) for p in meta["partitions"]]
    store.load(FactIndex.from_arrays(meta["kinds"], combos, arrays),
               {p: from_arrays(arrays[f"checksum_keys_{p}"], arrays[f"checksum_values_{p}"])
                for p in partitions},
               customers={int(p): int(n) for p, n in meta["customers"].items()},
               newest={int(p): int(t) for p, t in meta["newest"].items()})
    return {int(p): int(o) for p, o in meta["positions"].items()}

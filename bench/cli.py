"""Argument parsing shared by the bench commands: every bad value stops with one line naming it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """argparse without the usage dump: a bad argument is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse type for integers in ``[low, high]`` (``_`` separators allowed, e.g. 1_000_000)."""

    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value:,} is not between {low:,} and {high:,}")
        return value

    return parse


def int_list(low: int, high: int) -> Callable[[str], list[int]]:
    """An argparse type for comma-separated integers in ``[low, high]``, deduplicated and sorted (``1,2,4``)."""
    item = int_range(low, high)

    def parse(text: str) -> list[int]:
        values = [item(part.strip()) for part in text.split(",") if part.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"{text!r} names no number")
        return sorted(set(values))

    return parse


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def choices_list(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    """An argparse type for a comma-separated subset of ``allowed`` (``--skip quix,recovery``)."""

    def parse(text: str) -> list[str]:
        items = [item.strip() for item in text.split(",") if item.strip()]
        for item in items:
            if item not in allowed:
                raise argparse.ArgumentTypeError(f"{item!r} is not one of {', '.join(allowed)}")
        if not items:
            raise argparse.ArgumentTypeError(f"{text!r} names nothing; use one of {', '.join(allowed)}")
        return items

    return parse


def env_assignment(text: str) -> tuple[str, str]:
    """``RETENTION_NAME=value`` for ``--monitor-env``."""
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("RETENTION_") or not name[len("RETENTION_"):].replace("_", "").isalnum():
        raise argparse.ArgumentTypeError(f"{text!r} is not RETENTION_NAME=value")
    return name, value


class BenchError(Exception):
    """A run cannot go on; the message is the one line the user sees."""

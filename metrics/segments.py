"""Map a customer's raw segment attributes to the bounded segment keys used as labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

ALL = "all"
OTHER = "other"


class Segmenter:
    """Turns ``{"plan": "pro", "region": "mars"}`` into ``("all", "plan:pro", "region:other")``.

    Values outside the configured set, and missing dimensions, become ``other``, so label values
    stay bounded whatever publishers send.
    """

    def __init__(self, dimensions: Mapping[str, Sequence[str]]) -> None:
        self.dimensions = tuple(sorted(dimensions))
        self._allowed = {dim: frozenset(values) for dim, values in dimensions.items()}

    def keys(self, raw: Mapping[str, str]) -> tuple[str, ...]:
        out = [ALL]
        for dim in self.dimensions:
            value = raw.get(dim)
            out.append(f"{dim}:{value if value in self._allowed[dim] else OTHER}")
        return tuple(out)

    def all_keys(self) -> list[str]:
        """Every segment key a KPI can be reported for, in a stable order."""
        out = [ALL]
        for dim in self.dimensions:
            out.extend(f"{dim}:{v}" for v in sorted(self._allowed[dim]))
            out.append(f"{dim}:{OTHER}")
        return out

    def is_valid(self, key: str) -> bool:
        if key == ALL:
            return True
        dim, sep, value = key.partition(":")
        return bool(sep) and dim in self._allowed and (value in self._allowed[dim] or value == OTHER)


def label(value: str | None, allowed: frozenset[str], missing: str = "unspecified") -> str:
    """A bounded label for a free-text value such as a churn reason."""
    if value is None or value == "":
        return missing
    return value if value in allowed else OTHER

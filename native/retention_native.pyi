# The compiled apply step (src/lib.rs; streams/apply/processor.py calls it), the fact index's write
# buffer (src/buffer.rs; metrics/index.py) and the long answers' lookups by customer (src/lookup.rs:
# metrics/cohorts.py, metrics/ranking.py).
from collections.abc import Callable

from metrics.facts import Fact, Keys
from metrics.records import Rec

Statuses = list[tuple[str, str]] | None
# day, then the bytes of the columns t, v, c, who, w, then negatives, min t, max t, max v
Group = tuple[int, bytes, bytes, bytes, bytes, bytes, int, int, int, int]

class Engine:
    def __init__(
        self,
        dimensions: list[tuple[str, list[str]]],
        reasons: list[str],
        categories: list[str],
        lateness_us: int,
        history_us: int,
        lateness: str,
        history: str,
    ) -> None: ...
    def apply_records(
        self, stored: bytes | None, records: list[Rec]
    ) -> tuple[Statuses, bytes | None, int | None, int, int, bytes, bytes]: ...
    def apply_packs(
        self, packs: list[bytes], get_many: Callable[[list[bytes]], list[bytes | None]]
    ) -> tuple[
        list[tuple[bytes, bytes, bytes]],
        list[tuple[int, int]],
        int,
        list[tuple[str, int]],
        bytes,
        list[tuple[int, int, str]],
        list[int],
    ]: ...

class FactBuffer:
    def __init__(self) -> None: ...
    def combo(self, keys: Keys) -> int: ...
    def combos_from(self, start: int) -> list[Keys]: ...
    def combo_count(self) -> int: ...
    def push_facts(self, facts: list[Fact], who: int, w: int) -> int: ...
    def push_blob(self, blob: bytes, who: int, w: int) -> int: ...
    def __len__(self) -> int: ...
    def drain(self) -> tuple[list[tuple[str, list[Group]]], int]: ...

def positions(keys: bytes, needles: bytes) -> bytes: ...
def sums_by_key(keys: bytes, columns: list[bytes]) -> tuple[bytes, list[bytes]]: ...

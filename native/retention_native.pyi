# The compiled apply step (src/lib.rs); streams/apply/processor.py is its only caller.
from metrics.records import Rec

Statuses = list[tuple[str, str]] | None

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
    def apply_packed(
        self, stored: bytes | None, packed: bytes
    ) -> tuple[Statuses, bytes | None, int | None, int, int, bytes, bytes]: ...

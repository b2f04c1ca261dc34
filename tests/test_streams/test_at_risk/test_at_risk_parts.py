"""The pieces around the at-risk tracker: the registry and event format, ``/at-risk`` and the CLI table,
the store iteration the tracker sweeps with, and the ``risk_*`` settings."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from core.config import load_settings
from core.errors import ConfigError
from core.periods import to_us
from metrics.risk import DAY_US
from retention_monitor import at_risk_cli
from streams.apply.stores import MemoryStore, RocksStore
from streams.at_risk.registry import (
    AtRiskData,
    AtRiskReason,
    AtRiskRegistry,
    at_risk_response,
    decode_event,
    encode_event,
    policy_of,
)

SOURCE = "retention-monitor/test"
JAN_1 = to_us(datetime(2025, 1, 1, tzinfo=UTC))


def at(day: float) -> int:
    return JAN_1 + int(day * DAY_US)


# -- registry, events, the page, the CLI -------------------------------------------------------------


def data(cid: str, score: int, cls: str | None, since: str) -> AtRiskData:
    return AtRiskData(cid, True, True, score, 30, cls, since, ())


def test_registry_keeps_the_latest_status_of_its_own_source() -> None:
    reg = AtRiskRegistry(SOURCE)
    for d in (data("a", 40, "A", "2025-03-01T00:00:00Z"), data("b", 35, None, "2025-02-01T00:00:00Z"),
              data("c", 35, "C", "2025-01-01T00:00:00.5Z"), data("d", 90, "B", "2025-01-01T00:00:00Z")):
        reg.apply(encode_event(d, at(1), SOURCE))
    reg.apply(encode_event(data("x", 99, "A", "2025-01-01T00:00:00Z"), at(1), "retention-monitor/other-app"))
    reg.apply(b"not an event")
    reg.apply(None)
    reg.apply(encode_event(AtRiskData("d", False, True, 0, 30, "B", None, ()), at(2), SOURCE))
    assert reg.counts() == {"A": 1, "B": 0, "C": 1, "none": 1}
    total, rows = reg.query(None, 0, 10)
    assert (total, [r.customer_id for r in rows]) == (3, ["a", "c", "b"])  # score, then longest at risk
    assert reg.query("none", 0, 10)[1][0].customer_id == "b"
    assert reg.query(None, 36, 10)[0] == 1
    assert reg.skipped == 1


def test_event_format_and_ids() -> None:
    d = AtRiskData("c-1", True, True, 35, 30, "A", "2025-03-01T00:00:00Z",
                   (AtRiskReason("detractor", 35, "NPS 2 on 2025-03-01", "2025-03-01T00:00:00Z"),))
    raw = json.loads(encode_event(d, at(59) + 1, SOURCE))
    assert {k: raw[k] for k in ("specversion", "type", "source", "time", "datacontenttype")} == {
        "specversion": "1.0", "type": "customer.at_risk", "source": SOURCE, "time": "2025-03-01T00:00:00.000001Z",
        "datacontenttype": "application/json"}
    assert raw["data"]["reasons"] == [{"code": "detractor", "weight": 35, "detail": "NPS 2 on 2025-03-01",
                                       "since": "2025-03-01T00:00:00Z"}]
    assert decode_event(encode_event(d, at(59) + 1, SOURCE)).data == d
    assert encode_event(d, at(59) + 1, SOURCE) == encode_event(d, at(59) + 1, SOURCE)  # same decision, same id
    assert json.loads(encode_event(d, at(60), SOURCE))["id"] != raw["id"]


class FakeWeb:
    def json(self, body: Any, status: int = 200) -> tuple[int, Any]:
        return status, body


@pytest.mark.parametrize(("query", "status", "needle"), [
    ({"class": "D"}, 400, "class 'D' is not one of A, B, C, none"),
    ({"limit": "0"}, 400, "limit='0' is not a whole number 1-10000"),
    ({"min_score": "x"}, 400, "min_score='x' is not a whole number 0-100"),
    ({}, 503, "has not read the at-risk topic"),
])
def test_page_rejects_bad_queries_and_answers_only_when_caught_up(query: dict[str, str], status: int,
                                                                  needle: str) -> None:
    follower = SimpleNamespace(caught_up=False)
    got_status, body = at_risk_response(FakeWeb(), SimpleNamespace(query=query), AtRiskRegistry(SOURCE), follower)
    assert got_status == status
    assert needle in body["error"]


def test_cli_table_shows_who_and_why() -> None:
    reg = AtRiskRegistry(SOURCE)
    reg.apply(encode_event(AtRiskData("c-9", True, True, 75, 30, "A", "2025-03-01T00:00:00Z", (
        AtRiskReason("gone_quiet", 40, "no activity since 2025-01-01 (A customer)", "2025-03-02T00:00:00Z"),
        AtRiskReason("detractor", 35, "NPS 2 on 2025-03-01", "2025-03-01T00:00:00Z"))), at(70), SOURCE))
    status, body = at_risk_response(FakeWeb(), SimpleNamespace(query={}), reg, SimpleNamespace(caught_up=True))
    assert status == 200
    out = io.StringIO()
    Console(file=out, width=200).print(at_risk_cli.table(json.loads(json.dumps(body))))
    text = out.getvalue()
    for needle in ("customers at risk: 1", "c-9", "75", "gone_quiet (+40): no activity since 2025-01-01",
                   "detractor (+35): NPS 2 on 2025-03-01", "at risk per class: A 1, B 0, C 0, none 0"):
        assert needle in text


# -- store iteration and settings ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["memory", "rocksdb"])
def test_key_chunks_see_every_key_once_and_survive_writes_between_chunks(kind: str, tmp_path: Path) -> None:
    store = MemoryStore(0) if kind == "memory" else RocksStore(0, tmp_path / "p0")
    store.write([(f"k{i:03d}".encode(), b"s") for i in range(25)], 7)
    seen: list[bytes] = []
    for chunk in store.key_chunks(10):
        assert len(chunk) <= 10
        seen += chunk
        store.write([(b"k000", b"changed")], store.next_offset + 1)  # the apply stage keeps writing
    assert sorted(seen) == [f"k{i:03d}".encode() for i in range(25)]
    store.close()


def test_key_chunks_of_a_closed_rocksdb_raise(tmp_path: Path) -> None:
    store = RocksStore(0, tmp_path / "p0")
    store.write([(b"a", b"1"), (b"b", b"2")], 1)
    chunks = store.key_chunks(1)
    assert next(chunks) == [b"a"]
    store.close()
    with pytest.raises(Exception, match="closed"):
        next(chunks)


@pytest.mark.parametrize(("env", "needle"), [
    ({"RETENTION_RISK_THRESHOLD": "0"}, "RETENTION_RISK_THRESHOLD=0: must be 1-100"),
    ({"RETENTION_RISK_WEIGHTS": '{"vip": 5}'}, "RETENTION_RISK_WEIGHTS='vip': keys are detractor"),
    ({"RETENTION_RISK_WEIGHTS": '{"refunds": 101}'}, "RETENTION_RISK_WEIGHTS={'refunds': 101}: weights are"),
    ({"RETENTION_RISK_QUIET_AFTER": "2 months"}, "RETENTION_RISK_QUIET_AFTER='2 months': must be a duration"),
    ({"RETENTION_RISK_FREQUENCY_FACTOR": "1"}, "RETENTION_RISK_FREQUENCY_FACTOR=1.0: must be a number > 1"),
    ({"RETENTION_RISK_FREQUENCY_FACTOR": "fast"}, "RETENTION_RISK_FREQUENCY_FACTOR='fast': must be a number"),
    ({"RETENTION_RISK_REFUNDS_MIN": "-1"}, "RETENTION_RISK_REFUNDS_MIN=-1: must be 0-1000"),
    ({"RETENTION_TOPIC_AT_RISK": "retention.dlq"}, "RETENTION_TOPIC_AT_RISK='retention.dlq': must differ"),
])
def test_bad_risk_settings_get_one_line_errors(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env=env)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_risk_settings_reach_the_policy() -> None:
    s = load_settings(env={"RETENTION_RISK_WEIGHTS": '{"detractor": 50}', "RETENTION_RISK_FREQUENCY_FACTOR": "2.5",
                           "RETENTION_RISK_COMPLAINT_SLA": "3d"}).settings
    policy = policy_of(s.risk)
    assert (policy.weights["detractor"], policy.weights["gone_quiet_a"]) == (50, 40)  # the rest keep defaults
    assert (policy.frequency_factor, policy.complaint_sla_us, policy.threshold) == (2.5, 3 * DAY_US, 30)

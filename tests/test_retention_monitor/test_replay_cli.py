"""`retention-monitor replay`: options, checkpoints and exit codes (unit), and against real workers
(integration): a CSV replay gives the KPIs of publishing the equivalent events, resuming counts
nothing twice, and a dry run publishes nothing."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from fixtures import (
    ROOT,
    consume_all,
    converge,
    create_topics,
    encode,
    event,
    isolated_env,
    poll,
    produce,
    running_worker,
)

from core.errors import ConfigError
from retention_monitor.cli import _parser
from retention_monitor.replay_cli import Checkpoint, _resume, mapping_from_args
from streams.producers.replay import Row

NOWHERE = {"RETENTION_KAFKA_BOOTSTRAP": "127.0.0.1:9"}  # the discard port: any connection attempt fails
ORDER_OPTIONS = ["--type", "order.placed", "--delimiter", ";", "--decimal", ",", "--time-format", "%d.%m.%Y",
                 "--map", "id=Bestellnr", "--map", "order_id=Bestellnr", "--map", "customer_id=Kunde",
                 "--map", "time=Datum", "--map", "amount=Betrag", "--map", "currency=Währung"]  # fmt: skip


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "retention_monitor.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, check=False, env={**os.environ, **(env or {})}, timeout=120)  # fmt: skip


def replay(*args: str, env: dict[str, str], code: int = 0) -> dict[str, Any]:
    result = cli("replay", *args, "--json", env=env)
    assert result.returncode == code, result.stderr
    summary: dict[str, Any] = json.loads(result.stdout)
    return summary


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# -- options and mapping -------------------------------------------------------------------------


def test_inline_options_go_on_top_of_the_mapping_file(tmp_path: Path) -> None:
    toml = write(tmp_path / "m.toml", 'type = "order.placed"\ndelimiter = ";"\ntime_format = "%Y"\n'
                 '[map]\ncustomer_id = "K"\ntime = "T"\namount = "A"\n[const]\ncurrency = "USD"\n')  # fmt: skip
    args = _parser().parse_args(["replay", "x.csv", "--mapping", str(toml), "--map", "amount=Betrag",
                                 "--const", "currency=EUR", "--decimal", ",", "--time-format", "%d.%m.%Y"])  # fmt: skip
    mapping = mapping_from_args(args)
    assert mapping is not None
    (event_mapping,) = mapping.events
    assert event_mapping.columns == {"customer_id": "K", "time": "T", "amount": "Betrag"}
    assert event_mapping.consts == {"currency": "EUR"}
    assert (mapping.delimiter, mapping.decimal, event_mapping.time_format) == (";", ",", "%d.%m.%Y")
    # an inline constant replaces the file's column for the same field, and the other way round
    args = _parser().parse_args(["replay", "x.csv", "--mapping", str(toml), "--const", "amount=0",
                                 "--map", "currency=C"])  # fmt: skip
    event_mapping = mapping_from_args(args).events[0]  # type: ignore[union-attr]
    assert (event_mapping.columns["currency"], event_mapping.consts) == ("C", {"amount": "0"})
    assert mapping_from_args(_parser().parse_args(["replay", "x.jsonl"])) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "order.placed", "--map", "amount"], "--map 'amount': expected FIELD=COLUMN, e.g. --map amount="),
        (["--type", "order.placed", "--const", "=EUR"], "--const '=EUR': expected FIELD=VALUE"),
        (["--mapping", "nope.toml"], "--mapping nope.toml: cannot read it (No such file or directory)"),
        (["--mapping", str(ROOT / "examples" / "shop-customers.toml"), "--type", "customer.churned"],
         "shop-customers.toml: --type, --map and --const need a mapping with one event, not 2"),
        (["--type", "order.placed", "--map", "customer_id=K", "--map", "time=T", "--const", "currency=EUR",
          "--decimal", ";"], "replay options: decimal=';': must be '.' or ','"),
    ],
)  # fmt: skip
def test_bad_options_are_config_errors(tmp_path: Path, args: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        mapping_from_args(_parser().parse_args(["replay", "x.csv", *args]))
    assert message in str(info.value)


def test_bad_mapping_exits_2_with_one_line(tmp_path: Path) -> None:
    csv = write(tmp_path / "orders.csv", "Bestellnr;Kunde;Datum;Betrag;Währung\n")
    result = cli("replay", str(csv), *ORDER_OPTIONS, "--map", "amount=Betrg", env=NOWHERE)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {csv}: column 'Betrg' (for order.placed amount) is not in the header; "
        "columns: Bestellnr, Kunde, Datum, Betrag, Währung"
    ]


# -- dry run, checkpoints, exit codes (no broker needed) -----------------------------------------

ORDERS_CSV = """Bestellnr;Kunde;Datum;Betrag;Währung
1;K1;10.01.2025;49,90;EUR
2;K1;11.01.2025;12.50;EUR
3;;12.01.2025;5,00;EUR
4;K2;2025-01-13;5,00;EUR
5;K1;01.01.2025;5,00;EUR
6;K3;14.01.2025;5,00;JPY
7;K3;15.01.2025;5,00
8;K3;16.01.2025;1,00;EUR
"""


def test_dry_run_reports_reasons_with_examples_and_needs_no_broker(tmp_path: Path) -> None:
    csv = write(tmp_path / "orders.csv", ORDERS_CSV)
    env = {**NOWHERE, "RETENTION_DATA_DIR": str(tmp_path / "data")}
    summary = replay(str(csv), *ORDER_OPTIONS, "--dry-run", env=env, code=1)
    assert summary["rejected"] == {"bad_currency": 1, "bad_row": 1, "bad_time": 1, "missing_field": 1,
                                   "too_late": 1, "wrong_type": 1}  # fmt: skip
    assert [(e["line"], e["reason"]) for e in summary["examples"]] == [
        (3, "wrong_type"), (4, "missing_field"), (5, "bad_time"), (6, "too_late"), (7, "bad_currency"), (8, "bad_row"),
    ]  # fmt: skip
    assert "'12.50' is not a number; the mapping says decimal = ','" in summary["examples"][0]["message"]
    assert (summary["rows"], summary["events"], summary["published"], summary["complete"]) == (8, 3, 0, True)
    assert not (tmp_path / "data").exists()  # a dry run leaves no checkpoint
    clean = replay(str(ROOT / "examples" / "shop-orders.csv"), "--mapping", str(ROOT / "examples" / "shop-orders.toml"),
                   "--dry-run", env=env)  # fmt: skip
    assert (clean["rejected"], clean["events"]) == ({}, 8)


def test_dry_run_table_shows_examples(tmp_path: Path) -> None:
    csv = write(tmp_path / "orders.csv", ORDERS_CSV)
    result = cli("replay", str(csv), *ORDER_OPTIONS, "--dry-run", env={**NOWHERE, "COLUMNS": "200"})
    assert result.returncode == 1
    assert "rejected: bad_time" in result.stdout
    assert "line 5: order.placed: '2025-01-13' does not match time_format '%d.%m.%Y'" in result.stdout


def test_unreachable_broker_writes_no_checkpoint(tmp_path: Path) -> None:
    csv = write(tmp_path / "orders.csv", ORDERS_CSV)
    checkpoint = tmp_path / "cp.json"
    result = cli("replay", str(csv), *ORDER_OPTIONS, "--checkpoint", str(checkpoint), env=NOWHERE)
    assert result.returncode == 3  # a service unreachable (docs/commands.md), not bad input
    assert "cannot reach Kafka at 127.0.0.1:9" in result.stderr
    assert not checkpoint.exists()


def test_a_checkpoint_of_another_mapping_or_a_broken_one_is_refused(tmp_path: Path) -> None:
    csv = write(tmp_path / "orders.csv", ORDERS_CSV)
    checkpoint = tmp_path / "cp.json"
    Checkpoint(checkpoint, "another-mapping", rows=3, prefix="x").save()
    result = cli("replay", str(csv), *ORDER_OPTIONS, "--checkpoint", str(checkpoint), env=NOWHERE)
    assert result.returncode == 2
    assert f"checkpoint {checkpoint} is of a replay with another mapping or other topics; --restart" in result.stderr
    checkpoint.write_text("{half")
    result = cli("replay", str(csv), *ORDER_OPTIONS, "--checkpoint", str(checkpoint), env=NOWHERE)
    assert result.returncode == 2
    assert f"checkpoint {checkpoint} is unreadable" in result.stderr


def _rows(n: int) -> list[Row]:
    return [Row(line=i + 2, digest=f"row {i}".encode()) for i in range(n)]


def _prefix(n: int) -> str:
    hasher = hashlib.sha256()
    for row in _rows(n):
        hasher.update(row.digest)
    return hasher.hexdigest()


def test_resume_skips_acknowledged_rows_and_checks_they_did_not_change(tmp_path: Path) -> None:
    cp = Checkpoint(tmp_path / "cp.json", "f", rows=3, prefix=_prefix(3))
    got = list(_resume(iter(_rows(10)), cp, limit=4, hasher=hashlib.sha256()))
    assert ([r.line for r in got], cp.complete) == ([5, 6, 7, 8], False)
    got = list(_resume(iter(_rows(10)), cp, limit=None, hasher=hashlib.sha256()))
    assert ([r.line for r in got], cp.complete) == ([5, 6, 7, 8, 9, 10, 11], True)
    exact = Checkpoint(tmp_path / "cp.json", "f", rows=10, prefix=_prefix(10))
    assert (list(_resume(iter(_rows(10)), exact, None, hashlib.sha256())), exact.complete) == ([], True)
    changed = [*_rows(10)]
    changed[1] = Row(line=3, digest=b"edited")
    with pytest.raises(ConfigError, match="the file changed in its first 3 rows since that replay; --restart"):
        list(_resume(iter(changed), cp, None, hashlib.sha256()))
    with pytest.raises(ConfigError, match="the file has 2 rows, fewer than the 3 already replayed"):
        list(_resume(iter(_rows(2)), cp, None, hashlib.sha256()))


# -- against real workers ------------------------------------------------------------------------

TZ = "America/New_York"  # behind UTC: a date read as UTC midnight would fall on the previous local day
CUSTOMERS_CSV = """Kundennr;Registriert;Tarif;Gekündigt;Grund
K1;2024-11-20;Pro;;
K2;2024-12-02;Basic;2025-03-02;Preis
K3;2025-01-10;Pro;;
K4;2025-02-21;Basic;;
K5;2024-12-31;Pro;2025-01-31;Wettbewerber
K6;2025-04-01;Pro;;
"""
CUSTOMERS_TOML = """delimiter = ";"
[[event]]
type = "customer.signed_up"
map = {customer_id = "Kundennr", time = "Registriert", "segment.plan" = "Tarif"}
values."segment.plan" = {Pro = "pro", Basic = "basic"}
[[event]]
type = "customer.churned"
optional = true
map = {customer_id = "Kundennr", time = "Gekündigt", reason = "Grund"}
values.reason = {Preis = "price", Wettbewerber = "competitor"}
"""
SHOP_CSV = """Bestellnr;Kunde;Datum;Betrag;Währung
1001;K1;02.01.2025;49,90;EUR
1002;K2;03.01.2025;1.249,00;EUR
1003;K1;17.01.2025;12,50;EUR
1004;K3;05.02.2025;89,00;CHF
1005;K2;14.02.2025;19,99;EUR
1006;K4;01.03.2025;240,00;USD
1007;K1;14.03.2025;12,50;EUR
1008;K3;31.03.2025;35,00;EUR
1009;K1;01.04.2025;20,00;EUR
"""
# No id column, and two identical rows: two partial refunds of the same amount on one day.
REFUNDS_CSV = "order,customer,day,amount\n1002,K2,2025-03-01,\"100,00\"\n1002,K2,2025-03-01,\"100,00\"\n"
REFUND_OPTIONS = ["--type", "order.refunded", "--decimal", ",", "--map", "order_id=order",
                  "--map", "customer_id=customer", "--map", "time=day", "--map", "amount=amount",
                  "--const", "currency=EUR"]  # fmt: skip


def equivalent_events() -> list[dict[str, Any]]:
    """The three exports above, written by hand as CloudEvents (New York offsets: -05:00 in winter, -04:00 from
    9 March 2025)."""
    def signup(c: str, t: str, plan: str) -> dict[str, Any]:
        return event("customer.signed_up", t, {"customer_id": c, "segment": {"plan": plan}})

    def order(n: str, c: str, t: str, amount: float, currency: str = "EUR") -> dict[str, Any]:
        return event("order.placed", t, {"customer_id": c, "order_id": n, "amount": amount, "currency": currency})

    refund = {"customer_id": "K2", "order_id": "1002", "amount": 100.0, "currency": "EUR"}
    return [
        signup("K1", "2024-11-20T00:00:00-05:00", "pro"),
        signup("K2", "2024-12-02T00:00:00-05:00", "basic"),
        signup("K5", "2024-12-31T00:00:00-05:00", "pro"),
        order("1001", "K1", "2025-01-02T00:00:00-05:00", 49.9),
        order("1002", "K2", "2025-01-03T00:00:00-05:00", 1249.0),
        signup("K3", "2025-01-10T00:00:00-05:00", "pro"),
        order("1003", "K1", "2025-01-17T00:00:00-05:00", 12.5),
        event("customer.churned", "2025-01-31T00:00:00-05:00", {"customer_id": "K5", "reason": "competitor"}),
        order("1004", "K3", "2025-02-05T00:00:00-05:00", 89.0, "CHF"),
        order("1005", "K2", "2025-02-14T05:00:00Z", 19.99),
        signup("K4", "2025-02-21T00:00:00-05:00", "basic"),
        event("order.refunded", "2025-03-01T00:00:00-05:00", refund),
        event("order.refunded", "2025-03-01T05:00:00Z", refund),
        order("1006", "K4", "2025-03-01T00:00:00-05:00", 240.0, "USD"),
        event("customer.churned", "2025-03-02T00:00:00-05:00", {"customer_id": "K2", "reason": "price"}),
        order("1007", "K1", "2025-03-14T00:00:00-04:00", 12.5),
        order("1008", "K3", "2025-03-31T00:00:00-04:00", 35.0),
        signup("K6", "2025-04-01T00:00:00-04:00", "pro"),
        order("1009", "K1", "2025-04-01T04:00:00Z", 20.0),
    ]


def answer(worker: Any, period: str, segment: str = "all") -> dict[str, Any]:
    got = worker.kpis(period, segment)
    return {k: got[k] for k in ("period", "segment", "kpis", "inputs", "abc")}


def counts(worker: Any, period: str) -> dict[str, Any]:
    inputs = worker.kpis(period)["inputs"]
    return {k: inputs[k] for k in ("B", "N", "L", "E", "orders", "orders_refunded")}


PERIODS = [("2025-Q1", "all"), ("2025-Q1", "plan:pro"), ("2025-01", "all"), ("2025-03", "all"), ("2025-04", "all"),
           ("2024", "all"), ("2025-03-01", "all")]  # fmt: skip
# Q1 in New York: K1 K2 K5 before it, K3 K4 new, K5 K2 lost; K6 and order 1009 (1 April, local) are Q2.
Q1 = {"B": 3, "N": 2, "L": 2, "E": 3, "orders": 8, "orders_refunded": 1}


@pytest.mark.integration
def test_a_csv_replay_gives_the_kpis_of_the_equivalent_events(stack: str, tmp_path: Path) -> None:
    common = {"RETENTION_CLOCK": "event", "RETENTION_TIMEZONE": TZ, "RETENTION_ALLOWED_LATENESS": "400d"}
    env_csv, env_events = isolated_env(**common), isolated_env(**common)
    mapping = write(tmp_path / "customers.toml", CUSTOMERS_TOML)
    exports = [
        (write(tmp_path / "customers.csv", CUSTOMERS_CSV), ["--mapping", str(mapping)]),
        (write(tmp_path / "shop.csv", SHOP_CSV), ORDER_OPTIONS),
        (write(tmp_path / "refunds.csv", REFUNDS_CSV), REFUND_OPTIONS),
    ]  # fmt: skip
    events = equivalent_events()
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_bytes(b"\n".join(encode(e) for e in events) + b"\n")
    with running_worker(env_csv) as from_csv, running_worker(env_events) as from_events:
        sent = [replay(str(f), *options, env=env_csv) for f, options in exports]
        assert [(s["rows"], s["published"], s["rejected"]) for s in sent] == [(6, 8, {}), (9, 9, {}), (2, 2, {})]
        published = cli("publish", str(jsonl), env=env_events)
        assert published.returncode == 0, published.stderr
        assert len(events) == sum(s["published"] for s in sent) == 19

        for worker in (from_csv, from_events):
            converge(lambda w=worker: counts(w, "2025-Q1"), Q1, f"Q1 inputs of {worker.url}")
        for period, segment in PERIODS:
            converge(lambda p=period, s=segment: answer(from_csv, p, s),
                     lambda p=period, s=segment: answer(from_events, p, s), f"{period} {segment}")  # fmt: skip

        # Again, from the first row: the same ids, so every event is a duplicate and nothing changes.
        again = [replay(str(f), *options, "--restart", env=env_csv) for f, options in exports]
        assert sum(s["published"] for s in again) == 19
        poll(lambda: from_csv.metric_sum("retention_events_duplicate_total") == 19, 60, "19 duplicates")
        # and a complete replay run once more sends nothing
        assert replay(str(exports[1][0]), *ORDER_OPTIONS, env=env_csv)["published"] == 0
        # the JSONL path of replay: sent byte for byte, so the same ids as publish
        assert replay(str(jsonl), env=env_events)["published"] == 19
        poll(lambda: from_events.metric_sum("retention_events_duplicate_total") == 19, 60, "19 duplicates")
        for period, segment in PERIODS:
            converge(lambda p=period, s=segment: answer(from_csv, p, s),
                     lambda p=period, s=segment: answer(from_events, p, s), f"{period} {segment} after replays")


@pytest.mark.integration
def test_an_interrupted_replay_resumes_and_counts_nothing_twice(stack: str, tmp_path: Path) -> None:
    env = isolated_env(RETENTION_CLOCK="event", RETENTION_ALLOWED_LATENESS="400d")
    # 40 orders of 10 customers, one a day from 1 January, no id column: the ids are hashes of the rows
    lines = [f"c{j % 10};{1 + j % 28:02d}.{1 + j // 28:02d}.2025;{j},{j:02d}" for j in range(40)]
    csv = write(tmp_path / "orders.csv", "Kunde;Datum;Betrag\n" + "\n".join(lines) + "\n")
    options = [str(csv), "--type", "order.placed", "--delimiter", ";", "--decimal", ",", "--time-format", "%d.%m.%Y",
               "--map", "customer_id=Kunde", "--map", "time=Datum", "--map", "amount=Betrag", "--const", "currency=EUR"]
    with running_worker(env) as worker:
        first = replay(*options, "--limit", "4", env=env)
        assert (first["published"], first["complete"]) == (4, False)
        checkpoint = Path(first["checkpoint"])
        after_four = checkpoint.read_bytes()
        second = replay(*options, "--limit", "6", env=env)
        assert (second["resumed_after"], second["published"]) == (4, 6)
        # A crash between Kafka's acks and the checkpoint write: rows 5-10 will be sent again.
        checkpoint.write_bytes(after_four)

        # A test run started in the background (`cmd &` without job control) has SIGINT ignored, and a
        # child inherits that: Python would install no KeyboardInterrupt handler. A signal this process
        # catches is reset to the default at exec, so the child gets Ctrl-C as from a terminal.
        inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            slow = subprocess.Popen([sys.executable, "-m", "retention_monitor.cli", "replay", *options, "--rate", "4"],
                                    cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        finally:
            signal.signal(signal.SIGINT, inherited)
        try:
            poll(lambda: json.loads(checkpoint.read_text())["rows"] >= 12, 60, "the slow replay to pass row 12")
            slow.send_signal(signal.SIGINT)
            _, err = slow.communicate(timeout=60)
        finally:
            slow.kill()
        assert slow.returncode == 130, err
        assert b"interrupted: " in err
        stopped = json.loads(checkpoint.read_text())
        assert 12 <= stopped["rows"] < 40
        assert not stopped["complete"]

        last = replay(*options, env=env)
        assert (last["resumed_after"], last["rows"], last["complete"]) == (stopped["rows"], 40 - stopped["rows"], True)

        amount = sum(float(f"{j}.{j:02d}") for j in range(40))

        def totals() -> tuple[int, int, float]:
            i = worker.kpis("2025-Q1")["inputs"]
            return i["orders"], i["customers_ordering"], round(i["order_amount"], 2)

        converge(totals, (40, 10, round(amount, 2)), "every order counted exactly once")
        assert worker.metric_sum("retention_events_duplicate_total") >= 6


@pytest.mark.integration
def test_a_dry_run_publishes_nothing(stack: str, tmp_path: Path) -> None:
    env = isolated_env()
    topics = [env[f"RETENTION_TOPIC_{t}"] for t in ("LIFECYCLE", "SUPPORT", "FEEDBACK", "TEAM")]
    create_topics(stack, topics)
    csv = write(tmp_path / "orders.csv", ORDERS_CSV)
    summary = replay(str(csv), *ORDER_OPTIONS, "--dry-run", env=env, code=1)
    assert sum(summary["rejected"].values()) == 6
    assert summary["events"] == 3
    # A marker after the dry run: anything the dry run had published would come before it.
    marker = f"marker-{uuid.uuid4().hex}".encode()
    produce(stack, [(t, None, marker) for t in topics])
    for topic in topics:
        assert [m.value for m in consume_all(stack, topic, want=1, timeout=30)] == [marker], topic

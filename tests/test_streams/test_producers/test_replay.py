"""The pure side of `replay`: mapping validation, cell conversion, deterministic ids, lateness, sources."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from fixtures import ROOT, encode, event

from core.errors import ConfigError
from core.settings import Settings
from streams.contract.decode import Event, decode
from streams.producers.replay import LatenessCheck, Row, Source
from streams.producers.replay_mapping import Mapping, parse_mapping, parse_number, parse_time, rfc3339

BERLIN = Settings(timezone="Europe/Berlin")
ORDERS = {"type": "order.placed", "map": {"customer_id": "Kunde", "time": "Datum", "amount": "Betrag"},
          "const": {"currency": "EUR"}}  # fmt: skip


def rows(tmp: Path, text: str, doc: dict[str, Any], name: str = "export.csv", settings: Settings = BERLIN) -> list[Row]:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return list(Source(path, settings, parse_mapping(doc)))


def docs(result: list[Row]) -> list[dict[str, Any]]:
    return [json.loads(b.value) for row in result for b in row.events]


def problems(result: list[Row]) -> list[tuple[int, str]]:
    return [(p.line, p.reason) for row in result for p in row.problems]


# -- the mapping ---------------------------------------------------------------------------------


def test_every_option_of_a_one_event_mapping(tmp_path: Path) -> None:
    doc = {"type": "customer.signed_up", "delimiter": "tab", "decimal": ",", "encoding": "cp1252",
           "time_format": "%d.%m.%Y %H:%M", "id_seed": "crm",
           "map": {"id": "Nr", "customer_id": "Kunde", "time": "Seit", "segment.plan": "Tarif", "source": "System"},
           "const": {"segment.region": "eu"}, "values": {"segment.plan": {"Profi": "pro", "-": ""}}}  # fmt: skip
    path = tmp_path / "crm.tsv"
    path.write_bytes("Nr\tKunde\tSeit\tTarif\tSystem\n7\tMüller\t14.03.2025 09:30\tProfi\tcrm\n"
                     "8\tK-2\t15.03.2025 00:00\t-\tcrm\n".encode("cp1252"))  # fmt: skip
    got = docs(list(Source(path, BERLIN, parse_mapping(doc))))
    assert got[0] == {"specversion": "1.0", "id": "customer.signed_up:7", "source": "crm", "type": "customer.signed_up",
                      "time": "2025-03-14T08:30:00Z",
                      "data": {"customer_id": "Müller", "segment": {"plan": "pro", "region": "eu"}}}  # fmt: skip
    # "-" renamed to an empty cell: the optional dimension is left out, the constant one stays
    assert got[1]["data"] == {"customer_id": "K-2", "segment": {"region": "eu"}}


def test_several_events_per_row_and_optional_ones(tmp_path: Path) -> None:
    doc = {"event": [
        {"type": "customer.signed_up", "map": {"customer_id": "id", "time": "since"}},
        {"type": "customer.churned", "optional": True, "map": {"customer_id": "id", "time": "until", "reason": "why"},
         "values": {"reason": {"Preis": "price"}}},
    ]}  # fmt: skip
    result = rows(tmp_path, "id,since,until,why\nc1,2025-01-02,2025-02-03,Preis\nc2,2025-01-05,,\n", doc)
    assert [(d["type"], d["data"]) for d in docs(result)] == [
        ("customer.signed_up", {"customer_id": "c1"}),
        ("customer.churned", {"customer_id": "c1", "reason": "price"}),
        ("customer.signed_up", {"customer_id": "c2"}),
    ]
    assert [r.skipped for r in result] == [0, 1]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({**ORDERS, "delimitter": ";"}, "mapping: unknown key 'delimitter'; allowed: const, decimal, delimiter"),
        ({**ORDERS, "type": "order.placd"}, "type='order.placd': must be one of customer.signed_up, customer.updated"),
        ({**ORDERS, "map": {**ORDERS["map"], "amout": "B"}},
         "order.placed has no target 'amout'; allowed: id, time, source, customer_id, order_id, amount, currency"),
        ({**ORDERS, "map": {**ORDERS["map"], "segment.plan": "T"}}, "order.placed has no target 'segment.plan'"),
        ({"type": "customer.updated", "map": {"customer_id": "a", "time": "b", "segment": "c"}},
         "customer.updated has no target 'segment'; allowed: id, time, source, customer_id, segment.DIMENSION"),
        ({**ORDERS, "const": {"currency": "EUR", "amount": 1}, "map": {**ORDERS["map"]}},
         "order.placed: 'amount' is both mapped to column 'Betrag' and a constant; keep one"),
        ({**ORDERS, "const": {"currency": "EUR", "id": "x"}}, "order.placed: id cannot be a constant"),
        ({**ORDERS, "const": {}}, "order.placed needs 'currency': --map currency=COLUMN or --const currency=VALUE"),
        ({"type": "customer.updated", "map": {"customer_id": "a", "time": "b"}}, "customer.updated needs 'segment'"),
        ({"type": "customer.churned", "map": {"customer_id": "a"}}, "customer.churned needs 'time'"),
        ({**ORDERS, "decimal": ";"}, "decimal=';': must be '.' or ','"),
        ({**ORDERS, "delimiter": ";;"}, "delimiter=';;': must be one character such as ',' ';' '|' or 'tab'"),
        ({**ORDERS, "encoding": "klingon"}, "encoding='klingon': not a Python codec"),
        ({**ORDERS, "time_format": "dd.mm.yyyy"}, "time_format='dd.mm.yyyy': must be a strptime format like %d.%m.%Y"),
        ({**ORDERS, "optional": "yes"}, "optional='yes': must be true or false"),
        ({**ORDERS, "event": [ORDERS]}, "give either type, [map], [const] at the top or [[event]] tables, not both"),
        ({"event": []}, "[[event]] must be one or more tables, each with a type"),
        ({**ORDERS, "map": {**ORDERS["map"], "customer_id": 3}}, "map.customer_id=3: must be a non-empty str"),
        ({**ORDERS, "const": {"currency": True}}, "order.placed: const.currency=True: must be a non-empty str"),
        ({"event": [ORDERS, {**ORDERS, "mapp": {}}]}, "unknown key 'mapp' in an event; allowed: const, map, optional"),
    ],
)
def test_bad_mapping_is_one_line_naming_the_value(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_mapping(doc)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("header", "const", "message"),
    [
        ("Kunde,Datum", {"currency": "EUR"}, "export.csv: column 'Betrag' (for order.placed amount) is not in the "
                                             "header; columns: Kunde, Datum"),
        ("Kunde,Datum,Betrag,Betrag", {"currency": "EUR"}, "column 'Betrag' (for order.placed amount) appears twice"),
        ("Kunde,Datum,Betrag", {"currency": "EUX"}, "const currency='EUX': must be one of CHF, EUR, GBP, USD"),
        ("Kunde,Datum,Betrag", {"currency": "EUR", "order_id": "o", "source": "s", "amount": 1}, "both mapped"),
    ],
)
def test_mapping_is_checked_against_the_header_and_settings_up_front(
    tmp_path: Path, header: str, const: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        rows(tmp_path, header + "\n", {**ORDERS, "const": const})
    assert message in str(info.value)


def test_bad_constants_are_rejected_before_any_row(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"order.placed const time='soon': 'soon' does not match RFC 3339"):
        rows(tmp_path, "Kunde,Betrag\n", {**ORDERS, "map": {"customer_id": "Kunde", "amount": "Betrag"},
                                          "const": {"currency": "EUR", "time": "soon"}})  # fmt: skip
    with pytest.raises(ConfigError, match=r"survey.nps const score='9.5': '9.5' is not a whole number"):
        rows(tmp_path, "K,T\n", {"type": "survey.nps", "map": {"customer_id": "K", "time": "T"},
                                 "const": {"score": 9.5}})  # fmt: skip


# -- cells ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "decimal", "value"),
    [("12,50", ",", 12.5), ("1.234,50", ",", 1234.5), ("1.234", ",", 1234.0), (",5", ",", 0.5), ("7", ",", 7.0),
     ("12.50", ".", 12.5), ("1,234.50", ".", 1234.5), ("-3", ".", -3.0), ("1,234,567", ".", 1234567.0)],
)  # fmt: skip
def test_numbers_with_either_decimal_mark(text: str, decimal: str, value: float) -> None:
    assert parse_number(text, decimal) == value


@pytest.mark.parametrize(
    ("text", "decimal", "message"),
    [("12,50", ".", "'12,50' is not a number; the mapping says decimal = '.'"),
     ("12.5", ",", "'12.5' is not a number; the mapping says decimal = ','"),
     ("12,5,0", ".", "'12,5,0' is not a number"), ("12 €", ",", "'12 €' is not a number"),
     ("1.23,4", ",", "'1.23,4' is not a number")],
)  # fmt: skip
def test_numbers_are_never_guessed(tmp_path: Path, text: str, decimal: str, message: str) -> None:
    result = rows(tmp_path, f'Kunde,Datum,Betrag\nk,2025-01-01,"{text}"\n', {**ORDERS, "decimal": decimal})
    assert [(p.reason, p.message) for p in result[0].problems] == [("wrong_type", f"order.placed: {message}")]


@pytest.mark.parametrize(
    ("text", "fmt", "utc"),
    [("2025-03-14", "", "2025-03-13T23:00:00Z"),  # a date is midnight in the timezone setting (CET)
     ("2025-07-14", "", "2025-07-13T22:00:00Z"),  # ... in summer time too
     ("2025-03-14 09:30", "", "2025-03-14T08:30:00Z"),
     ("2025-03-14T09:30:00Z", "", "2025-03-14T09:30:00Z"),
     ("2025-03-14T09:30:00.25-05:00", "", "2025-03-14T14:30:00.250000Z"),
     ("14.03.2025", "%d.%m.%Y", "2025-03-13T23:00:00Z"),
     ("03/14/2025 09:30 +0000", "%m/%d/%Y %H:%M %z", "2025-03-14T09:30:00Z"),
     ("1741946400", "unix", "2025-03-14T10:00:00Z"),
     ("1741946400123", "unix_ms", "2025-03-14T10:00:00.123000Z"),
     ("2025-03-30 02:30", "", "2025-03-30T01:30:00Z")],  # a wall time skipped by DST: the offset before
)  # fmt: skip
def test_times_without_offset_are_in_the_configured_timezone(text: str, fmt: str, utc: str) -> None:
    assert rfc3339(parse_time(text, fmt, BERLIN.tz)) == utc


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path: Path) -> None:
    result = rows(tmp_path, "\ufeffKunde,Datum,Betrag\nk,2025-01-01,5\n", {**ORDERS, "encoding": "utf-8"})
    assert docs(result)[0]["data"]["customer_id"] == "k"


def test_date_only_rows_land_on_their_local_day(tmp_path: Path) -> None:
    doc = {**ORDERS, "map": {**ORDERS["map"], "order_id": "Nr"}}
    result = rows(tmp_path, "Nr,Kunde,Datum,Betrag\n1,k,2025-04-01,5\n", doc, settings=Settings(timezone="Asia/Tokyo"))
    assert docs(result)[0]["time"] == "2025-03-31T15:00:00Z"


def test_row_problems_use_the_dead_letter_reasons(tmp_path: Path) -> None:
    text = ("Kunde,Datum,Betrag\n"
            "k1,2025-01-01,5\n"       # fine
            ",2025-01-01,5\n"         # empty required cell
            "k1,gestern,5\n"          # bad time
            "k1,2025-01-01,fünf\n"    # not a number
            "k1,2025-01-01,-5\n"      # negative amount: the contract's bad_value
            "k1,2025-01-01\n"         # a cell short
            "\n ,  ,\n"               # blank records are not rows
            '"k2\nmultiline",2025-01-02,5\n'
            "k3,2025-01-01,5,extra\n")  # fmt: skip
    result = rows(tmp_path, text, ORDERS)
    assert problems(result) == [(3, "missing_field"), (4, "bad_time"), (5, "wrong_type"), (6, "bad_value"),
                                (7, "bad_row"), (12, "bad_row")]  # fmt: skip
    assert [r.line for r in result] == [2, 3, 4, 5, 6, 7, 10, 12]
    assert docs(result)[1]["data"]["customer_id"] == "k2\nmultiline"
    assert "column 'Kunde' (customer_id) is empty" in result[1].problems[0].message
    assert result[5].problems[0].message == "2 cells, the header has 3"


def test_contract_checks_come_from_the_worker_decoder(tmp_path: Path) -> None:
    doc = {"type": "survey.nps", "map": {"customer_id": "k", "time": "t", "score": "s"}}
    result = rows(tmp_path, "k,t,s\na,2025-01-01,9\na,2025-01-02,11\na,2025-01-03,x\n", doc)
    assert problems(result) == [(3, "bad_value"), (4, "wrong_type")]
    usd = rows(tmp_path, "Kunde,Datum,Betrag,W\nk,2025-01-01,5,JPY\n",
               {**ORDERS, "map": {**ORDERS["map"], "currency": "W"}, "const": {}})  # fmt: skip
    assert problems(usd) == [(2, "bad_currency")]


def test_events_are_routed_by_type_and_keyed_by_customer(tmp_path: Path) -> None:
    tickets = rows(tmp_path, "t,k,at\nT1,c9,2025-01-01T10:00:00Z\n",
                   {"type": "ticket.opened", "map": {"ticket_id": "t", "customer_id": "k", "time": "at"}})  # fmt: skip
    reps = rows(tmp_path, "r,at\nR1,2025-01-01T10:00:00Z\n",
                {"type": "rep.joined", "map": {"rep_id": "r", "time": "at"}})  # fmt: skip
    assert [(b.topic, b.key) for r in tickets + reps for b in r.events] == [
        (BERLIN.topic_support, b"c9"), (BERLIN.topic_team, b"R1"),
    ]  # fmt: skip


# -- deterministic ids -----------------------------------------------------------------------------


def test_ids_from_an_id_column_carry_the_type(tmp_path: Path) -> None:
    doc = {"event": [{"type": "ticket.opened", "map": {"id": "n", "ticket_id": "n", "customer_id": "k", "time": "a"}},
                     {"type": "ticket.replied", "map": {"id": "n", "ticket_id": "n", "customer_id": "k", "time": "b"},
                      "const": {"author": "agent"}},
                     {"type": "ticket.replied", "map": {"id": "n", "ticket_id": "n", "customer_id": "k", "time": "c"},
                      "const": {"author": "customer"}}]}  # fmt: skip
    ids = [d["id"] for d in docs(rows(tmp_path, "n,k,a,b,c\n4711,c,2025-01-01,2025-01-02,2025-01-03\n", doc))]
    assert ids == ["ticket.opened:4711", "ticket.replied#1:4711", "ticket.replied#2:4711"]


def test_hashed_ids_are_stable_and_distinct(tmp_path: Path) -> None:
    text = "Kunde,Datum,Betrag\nk1,2025-01-01,5\nk1,2025-01-01,5\nk2,2025-01-01,5\n"
    first = [d["id"] for d in docs(rows(tmp_path, text, ORDERS))]
    again = [d["id"] for d in docs(rows(tmp_path, text, ORDERS))]
    assert first == again  # replaying the same export gives the same ids: the worker dedupes them
    assert len(set(first)) == 3  # two equal orders on one day stay two orders
    assert all(i.startswith("order.placed:") and len(i) == len("order.placed:") + 32 for i in first)
    # order_id defaults to the event id: one row, one order
    assert [d["data"]["order_id"] for d in docs(rows(tmp_path, text, ORDERS))] == first
    # an unmapped column added to a later export keeps the ids
    wider = "Kunde,Notiz,Datum,Betrag\nk1,x,2025-01-01,5\nk1,y,2025-01-01,5\nk2,z,2025-01-01,5\n"
    assert [d["id"] for d in docs(rows(tmp_path, wider, ORDERS))] == first
    # another file name is another export, unless id_seed names it
    renamed = [d["id"] for d in docs(rows(tmp_path, text, ORDERS, name="export-v2.csv"))]
    assert not set(renamed) & set(first)
    seeded = [[d["id"] for d in docs(rows(tmp_path, text, {**ORDERS, "id_seed": "shop"}, name=n))] for n in "ab"]
    assert seeded[0] == seeded[1]
    # a changed mapped cell is another event
    changed = [d["id"] for d in docs(rows(tmp_path, text.replace("k2,2025-01-01,5", "k2,2025-01-01,6"), ORDERS))]
    assert changed[:2] == first[:2]
    assert changed[2] != first[2]


def test_overlong_id_cells_are_hashed_to_fit_the_contract(tmp_path: Path) -> None:
    doc = {**ORDERS, "map": {**ORDERS["map"], "id": "Nr"}}
    result = rows(tmp_path, f"Nr,Kunde,Datum,Betrag\n{'x' * 200},k,2025-01-01,5\n", doc)
    assert problems(result) == []
    assert len(docs(result)[0]["id"]) <= 128


# -- lateness, duplicates -----------------------------------------------------------------------------


def test_lateness_is_simulated_per_stream_as_the_worker_judges_it() -> None:
    check = LatenessCheck(Settings(allowed_lateness="7d", history="30d").facts)

    def judge(type_: str, time: str, data: dict[str, Any], id_: str) -> str | None:
        decoded = decode(encode(event(type_, time, {"customer_id": "a", **data}, id_=id_)), frozenset(["EUR"]))
        assert isinstance(decoded, Event)
        return check.judge(decoded)

    assert judge("ticket.opened", "2025-04-01T00:00:00Z", {"ticket_id": "t"}, "1") is None
    assert judge("customer.signed_up", "2025-03-15T00:00:00Z", {}, "2") is None  # another stream
    assert judge("customer.updated", "2025-03-07T00:00:00Z", {"segment": {"plan": "pro"}}, "3") == (
        "8.00 days behind the newest customers and orders event of 'a' before it, allowed_lateness=7d")
    assert judge("survey.nps", "2025-02-28T00:00:00Z", {"score": 9}, "4") == (
        "32.00 days behind the newest event of 'a' before it, history=30d")
    assert judge("ticket.opened", "2025-04-01T00:00:00Z", {"ticket_id": "t"}, "1") == "duplicate"


def test_lateness_is_simulated_per_customer_in_file_order(tmp_path: Path) -> None:
    doc = {**ORDERS, "map": {**ORDERS["map"], "id": "Nr"}}
    text = ("Nr,Kunde,Datum,Betrag\n"
            "1,a,2025-03-01,5\n"
            "2,b,2025-01-01,5\n"   # another customer: not late
            "3,a,2025-02-22,5\n"   # 7 days behind a: still allowed
            "4,a,2025-02-21,5\n"   # 8 days behind: too late, and not remembered
            "4,a,2025-02-21,5\n"   # ... so its copy is too late again, not a duplicate
            "1,a,2025-03-01,5\n")  # fmt: skip
    result = rows(tmp_path, text, doc)
    assert problems(result) == [(5, "too_late"), (6, "too_late")]
    assert "order.placed:4: 8.00 days behind the newest customers and orders event of 'a' before it, " \
           "allowed_lateness=7d" in result[3].problems[0].message  # fmt: skip
    assert [r.duplicates for r in result] == [0, 0, 0, 0, 0, 1]
    assert len(result[3].events) == 1  # predicted, still sent: the worker decides


# -- JSONL and files ------------------------------------------------------------------------------


def test_jsonl_lines_are_kept_byte_for_byte_and_checked(tmp_path: Path) -> None:
    good = encode(event("survey.nps", "2025-01-01T00:00:00Z", {"customer_id": "c", "score": 3}))
    spaced = b'{ "specversion": "1.0", "id": "x", "source": "s", "type": "rep.left", "time": "2025-01-01T00:00:00Z",' \
             b' "data": {"rep_id": "r"} }'  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_bytes(good + b"\r\n\n" + b"{nope\n" + spaced)
    result = list(Source(path, BERLIN, None))
    assert [(b.topic, b.key, b.value) for r in result for b in r.events] == [
        (BERLIN.topic_feedback, b"c", good), (BERLIN.topic_team, b"r", spaced),
    ]  # fmt: skip
    assert problems(result) == [(3, "not_json")]


def test_file_problems_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        Source(tmp_path / "missing.csv", BERLIN, parse_mapping(ORDERS))
    (tmp_path / "orders.csv").write_text("Kunde,Datum,Betrag\n")
    with pytest.raises(ConfigError, match=r"orders.csv: a CSV export needs a mapping \(--mapping FILE.toml"):
        Source(tmp_path / "orders.csv", BERLIN, None)
    (tmp_path / "events.jsonl").write_text("{}\n")
    with pytest.raises(ConfigError, match=r"events.jsonl: .* a JSON Lines file \(.jsonl, .ndjson, .json\) has none"):
        Source(tmp_path / "events.jsonl", BERLIN, parse_mapping(ORDERS))
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(ConfigError, match="empty; a CSV export starts with a header row"):
        Source(tmp_path / "empty.csv", BERLIN, parse_mapping(ORDERS))
    (tmp_path / "latin.csv").write_bytes("Kunde,Datum,Betrag\nk,2025-01-01,5\nMüller,2025-01-01,5\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin.csv: not utf-8-sig text \(invalid start byte, byte b'\\xfc'\)"):
        Source(tmp_path / "latin.csv", BERLIN, parse_mapping(ORDERS))
    # an unterminated quote swallows the rest of the file into one cell
    (tmp_path / "quote.csv").write_text('Kunde,Datum,Betrag\nk,2025-01-01,5\n"k,2025-01-01,5\n' + "x\n" * 70_000)
    with pytest.raises(ConfigError, match=r"quote.csv: line 3 cannot be read \(field larger than field limit"):
        list(Source(tmp_path / "quote.csv", BERLIN, parse_mapping(ORDERS)))


@pytest.mark.parametrize(("name", "events", "skipped"),
                         [("shop-orders", 8, 0), ("shop-customers", 7, 3), ("helpdesk-tickets", 9, 3)])
def test_shipped_examples_replay_cleanly(name: str, events: int, skipped: int) -> None:
    mapping: Mapping = parse_mapping(tomllib.loads((ROOT / "examples" / f"{name}.toml").read_text()), name)
    result = list(Source(ROOT / "examples" / f"{name}.csv", BERLIN, mapping))
    assert problems(result) == []
    assert (sum(len(r.events) for r in result), sum(r.skipped for r in result)) == (events, skipped)

//! The event contract's fast path: a structured-mode CloudEvent as publishers usually write it, read
//! into its record (`streams.route.records.Recorder.record`) and re-keying key in one pass.
//!
//! It accepts only what `streams.contract.decode.decode` certainly accepts, with the same values;
//! anything else (escapes, an unknown type, a bad value, a duplicate field, a rare time format) is
//! `None` and goes to that decoder, which gives the record or the reason. The property test in
//! `tests/test_streams/test_route/test_compiled_route.py` holds the two to the same bytes.

use crate::json::{Json, Val};
use crate::records::Rec;

const MICRO: f64 = 1_000_000.0;
const MAX_STORED: f64 = 9_223_372_036_854_775_808.0; // 2**63: amounts are stored as msgpack int64

/// What a field of a data struct may hold (`streams/contract/events.py`).
#[derive(Clone, Copy, PartialEq)]
enum K {
    NonEmpty,    // 1..=256 characters
    OptNonEmpty, // the same or null
    OptText,     // 0..=256 characters or null
    Amount,      // 0 <= x <= 1e12
    OptAmount,
    Currency, // three capitals, one of the accepted
    OptCurrency,
    TicketKind,
    Author,
    Score(i64, i64),
    OptFloat,
    Segment, // {1..=64 chars: 0..=256 chars}
    OptSegment,
}

type Spec = &'static [(&'static str, K)];
const CUSTOMER: Spec = &[("customer_id", K::NonEmpty)];
const SIGNED_UP: Spec = &[("customer_id", K::NonEmpty), ("segment", K::OptSegment)];
const UPDATED: Spec = &[("customer_id", K::NonEmpty), ("segment", K::Segment)];
const CHURNED: Spec = &[("customer_id", K::NonEmpty), ("reason", K::OptText)];
const ORDER: Spec = &[("customer_id", K::NonEmpty), ("order_id", K::NonEmpty), ("amount", K::Amount),
    ("currency", K::Currency)];
const RETURNED: Spec = &[("customer_id", K::NonEmpty), ("order_id", K::NonEmpty), ("amount", K::OptAmount),
    ("currency", K::OptCurrency)];
const OPENED: Spec = &[("customer_id", K::NonEmpty), ("ticket_id", K::NonEmpty), ("kind", K::TicketKind),
    ("category", K::OptText), ("channel", K::OptText)];
const REPLIED: Spec = &[("customer_id", K::NonEmpty), ("ticket_id", K::NonEmpty), ("author", K::Author)];
const TICKET: Spec = &[("customer_id", K::NonEmpty), ("ticket_id", K::NonEmpty)];
const NPS: Spec = &[("customer_id", K::NonEmpty), ("score", K::Score(0, 10)), ("ticket_id", K::OptNonEmpty)];
const CSAT: Spec = &[("customer_id", K::NonEmpty), ("score", K::Score(1, 5)), ("ticket_id", K::OptNonEmpty)];
const FEEDBACK: Spec = &[("customer_id", K::NonEmpty), ("feedback_id", K::NonEmpty), ("channel", K::OptText),
    ("rating", K::OptFloat)];
const RESPONDED: Spec = &[("customer_id", K::NonEmpty), ("feedback_id", K::NonEmpty)];
const REP: Spec = &[("rep_id", K::NonEmpty), ("team", K::OptText)];

/// The record type code and the data spec of a CloudEvents `type`.
fn kind_of(t: &str) -> Option<(u8, Spec)> {
    Some(match t {
        "customer.signed_up" => (0, SIGNED_UP),
        "customer.updated" => (1, UPDATED),
        "customer.churned" => (2, CHURNED),
        "customer.reactivated" => (3, CUSTOMER),
        "order.placed" => (10, ORDER),
        "order.refunded" => (11, ORDER),
        "order.returned" => (12, RETURNED),
        "ticket.opened" => (20, OPENED),
        "ticket.replied" => (21, REPLIED),
        "ticket.resolved" => (22, TICKET),
        "ticket.reopened" => (23, TICKET),
        "survey.nps" => (30, NPS),
        "survey.csat" => (31, CSAT),
        "feedback.received" => (40, FEEDBACK),
        "feedback.responded" => (41, RESPONDED),
        "rep.joined" => (50, REP),
        "rep.left" => (51, REP),
        _ => return None,
    })
}

#[derive(Clone, Debug, PartialEq)]
enum V<'a> {
    Absent,
    Null,
    S(&'a str),
    F(f64),
    I(i64),
    Seg(Vec<(&'a str, &'a str)>),
}

/// Currency conversion as `Recorder.micro` does it: integer micro-units of the reporting currency.
pub struct Money {
    pub reporting: String,
    pub rates: Vec<(String, f64)>,
}

impl Money {
    fn rate(&self, code: &str) -> Option<f64> {
        self.rates.iter().find(|(c, _)| c == code).map(|(_, r)| *r)
    }

    fn accepted(&self, code: &str) -> bool {
        self.rate(code).is_some() // the route stage's accepted currencies are the keys of the rates
    }

    fn micro(&self, amount: f64, currency: Option<&str>) -> Option<i64> {
        let x = match currency {
            None => amount * MICRO,
            Some(c) if c == self.reporting => amount * MICRO,
            Some(c) => amount * self.rate(c)? * MICRO,
        };
        let r = x.round_ties_even(); // Python's round()
        (r.is_finite() && r < MAX_STORED && r > -MAX_STORED).then_some(r as i64)
    }
}

fn chars(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

fn sized(s: &str, lo: usize, hi: usize) -> bool {
    (s.len() >= lo && s.len() <= hi) || (s.len() > hi && (lo..=hi).contains(&chars(s)))
}

fn float(n: &str) -> Option<f64> {
    // Long literals may round differently between parsers: the full decoder takes them.
    if n.len() > 24 {
        return None;
    }
    n.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn field<'a>(j: &mut Json<'a>, k: K, money: &Money) -> Option<V<'a>> {
    if matches!(k, K::Segment | K::OptSegment) {
        if j.peek()? == b'n' {
            return None; // a null segment is invalid: leave the reason to the full decoder
        }
        return segment(j).map(V::Seg);
    }
    let v = j.value(1)?;
    let optional = matches!(k, K::OptNonEmpty | K::OptText | K::OptAmount | K::OptCurrency | K::OptFloat);
    if v == Val::Null {
        return optional.then_some(V::Null);
    }
    match (k, v) {
        (K::NonEmpty | K::OptNonEmpty, Val::Str(s)) => sized(s, 1, 256).then_some(V::S(s)),
        (K::OptText, Val::Str(s)) => sized(s, 0, 256).then_some(V::S(s)),
        (K::TicketKind, Val::Str(s)) => matches!(s, "complaint" | "request" | "question" | "incident").then_some(V::S(s)),
        (K::Author, Val::Str(s)) => matches!(s, "agent" | "customer").then_some(V::S(s)),
        (K::Currency | K::OptCurrency, Val::Str(s)) => {
            (s.len() == 3 && s.bytes().all(|c| c.is_ascii_uppercase()) && money.accepted(s)).then_some(V::S(s))
        }
        (K::Amount | K::OptAmount, Val::Num(n)) => float(n).filter(|x| (0.0..=1e12).contains(x)).map(V::F),
        (K::OptFloat, Val::Num(n)) => float(n).map(V::F),
        (K::Score(lo, hi), Val::Num(n)) => {
            let ok = n.len() <= 18 && n.bytes().all(|c| c.is_ascii_digit() || c == b'-');
            let x: i64 = if ok { n.parse().ok()? } else { return None };
            (lo..=hi).contains(&x).then_some(V::I(x))
        }
        _ => None,
    }
}

fn segment<'a>(j: &mut Json<'a>) -> Option<Vec<(&'a str, &'a str)>> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let mut first = true;
    while let Some(k) = j.key(&mut first)? {
        let v = j.string()?;
        if !sized(k, 1, 64) || !sized(v, 0, 256) || out.iter().any(|(seen, _)| *seen == k) {
            return None;
        }
        out.push((k, v));
    }
    Some(out)
}

/// The data object of a type: its fields' values in spec order, unknown fields checked and skipped.
fn data<'a>(j: &mut Json<'a>, spec: Spec, money: &Money) -> Option<Vec<V<'a>>> {
    let mut got = vec![V::Absent; spec.len()];
    let mut first = true;
    while let Some(k) = j.key(&mut first)? {
        match spec.iter().position(|(name, _)| *name == k) {
            Some(i) if got[i] == V::Absent => got[i] = field(j, spec[i].1, money)?,
            Some(_) => return None, // a duplicate
            None => {
                j.value(1)?;
            }
        }
    }
    for (v, (_, k)) in got.iter().zip(spec) {
        let required = matches!(k, K::NonEmpty | K::Amount | K::Currency | K::Author | K::Score(..) | K::Segment);
        if required && *v == V::Absent {
            return None;
        }
    }
    Some(got)
}

fn s<'a>(v: &V<'a>) -> Option<&'a str> {
    match v {
        V::S(s) => Some(s),
        _ => None,
    }
}

/// The record and the re-keying key of a data object (what `Recorder.record` and `partition_key` give).
fn record(typ: u8, d: &[V<'_>], id: &str, time_us: i64, money: &Money) -> Option<(Rec, String)> {
    let own = |v: &V<'_>| s(v).map(str::to_owned);
    let mut rec = Rec { time_us, typ, id: id.to_owned(), ref_: None, text: None, value: None, segment: None };
    match typ {
        0 | 1 => {
            let seg = match &d[1] {
                V::Seg(pairs) => pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
                _ => Vec::new(), // absent: the default, no dimensions
            };
            rec.segment = Some(seg);
        }
        2 => rec.text = own(&d[1]),
        10..=12 => {
            rec.ref_ = own(&d[1]);
            rec.value = match d[2] {
                V::F(amount) => Some(money.micro(amount, s(&d[3]))?),
                _ => None,
            };
        }
        20 => {
            rec.ref_ = own(&d[1]);
            rec.text = Some(format!("{}:{}", s(&d[2]).unwrap_or("request"), s(&d[3]).unwrap_or("")));
        }
        21 => (rec.ref_, rec.text) = (own(&d[1]), own(&d[2])),
        22 | 23 | 41 => rec.ref_ = own(&d[1]),
        30 | 31 => {
            rec.ref_ = own(&d[2]);
            rec.value = match d[1] {
                V::I(x) => Some(x),
                _ => None,
            };
        }
        40 => (rec.ref_, rec.text) = (own(&d[1]), own(&d[2])),
        50 | 51 => {
            rec.text = own(&d[1]);
            return Some((rec, format!("rep:{}", s(&d[0])?)));
        }
        _ => {}
    }
    let key = s(&d[0])?.to_owned();
    Some((rec, key))
}

/// The envelope's attributes, each once; `data` is remembered by position (it may come before `type`).
#[derive(Default)]
struct Envelope<'a> {
    specversion: Option<&'a str>,
    id: Option<&'a str>,
    source: Option<&'a str>,
    typ: Option<&'a str>,
    time: Option<&'a str>,
    data: Option<usize>,
}

fn envelope(text: &str) -> Option<Envelope<'_>> {
    let mut j = Json::new(text);
    let mut e = Envelope::default();
    let mut first = true;
    while let Some(k) = j.key(&mut first)? {
        let slot = match k {
            "specversion" => &mut e.specversion,
            "id" => &mut e.id,
            "source" => &mut e.source,
            "type" => &mut e.typ,
            "time" => &mut e.time,
            "data" => {
                if e.data.is_some() || j.peek()? != b'{' {
                    return None;
                }
                e.data = Some(j.i);
                j.value(0)?;
                continue;
            }
            _ => {
                j.value(1)?;
                continue;
            }
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(j.string()?);
    }
    j.at_end().then_some(e)
}

/// A valid event's record and key, or `None`: the full decoder decides.
pub fn fast(value: &[u8], money: &Money) -> Option<(Rec, String)> {
    let text = std::str::from_utf8(value).ok()?;
    let e = envelope(text)?;
    if e.specversion? != "1.0" || !sized(e.id?, 1, 128) || !sized(e.source?, 1, 256) {
        return None;
    }
    let (typ, spec) = kind_of(e.typ?)?;
    let time_us = crate::rfc3339::epoch_us(e.time?)?;
    let mut j = Json::at(text, e.data?);
    let d = data(&mut j, spec, money)?;
    record(typ, &d, e.id?, time_us, money)
}

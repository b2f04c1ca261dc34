//! The state codec (what `metrics.records` reads): a key's records, newest time and fact blob,
//! written byte for byte as msgspec writes them.

use crate::mp::{self, Rd, R};
use std::cmp::Ordering;

pub const SIGNED_UP: u8 = 0;
pub const UPDATED: u8 = 1;
pub const CHURNED: u8 = 2;
pub const REACTIVATED_T: u8 = 3;
pub const ORDER_PLACED: u8 = 10;
pub const ORDER_REFUNDED: u8 = 11;
pub const ORDER_RETURNED: u8 = 12;
pub const TICKET_OPENED_T: u8 = 20;
pub const TICKET_REPLIED: u8 = 21;
pub const TICKET_RESOLVED: u8 = 22;
pub const TICKET_REOPENED: u8 = 23;
pub const SURVEY_NPS: u8 = 30;
pub const SURVEY_CSAT: u8 = 31;
pub const FEEDBACK_RECEIVED_T: u8 = 40;
pub const FEEDBACK_RESPONDED_T: u8 = 41;
pub const REP_JOINED_T: u8 = 50;
pub const REP_LEFT_T: u8 = 51;

pub fn valid_type(t: i64) -> bool {
    matches!(t, 0..=3 | 10..=12 | 20..=23 | 30 | 31 | 40 | 41 | 50 | 51)
}

#[derive(Clone, Debug)]
pub struct Rec {
    pub time_us: i64,
    pub typ: u8,
    pub id: String,
    pub ref_: Option<String>,
    pub text: Option<String>,
    pub value: Option<i64>,
    pub segment: Option<Vec<(String, String)>>,
}

impl Rec {
    #[inline]
    pub fn key_cmp(&self, o: &Rec) -> Ordering {
        (self.time_us, self.typ)
            .cmp(&(o.time_us, o.typ))
            .then_with(|| self.id.as_str().cmp(o.id.as_str()))
    }
    pub fn key_lt_tuple(&self, k: (i64, u8, &str)) -> bool {
        (self.time_us, self.typ, self.id.as_str()) < k
    }
}

pub fn read_rec(r: &mut Rd) -> R<Rec> {
    let n = r.array()?;
    if n < 3 {
        return Err(format!("Expected `array` of at least length 3, got {n}"));
    }
    let time_us = r.int()?;
    let t = r.int()?;
    if !valid_type(t) {
        return Err(format!("Invalid enum value {t}"));
    }
    let id = r.str()?.to_owned();
    let mut rec = Rec { time_us, typ: t as u8, id, ref_: None, text: None, value: None, segment: None };
    if n > 3 {
        rec.ref_ = r.opt_str()?.map(str::to_owned);
    }
    if n > 4 {
        rec.text = r.opt_str()?.map(str::to_owned);
    }
    if n > 5 {
        rec.value = r.opt_int()?;
    }
    if n > 6 && !r.is_nil()? {
        let m = r.map()?;
        let mut seg: Vec<(String, String)> = Vec::with_capacity(m);
        for _ in 0..m {
            let k = r.str()?;
            let v = r.str()?.to_owned();
            // a repeated key: the last value wins, at the first key's place (as a dict)
            match seg.iter_mut().find(|(kk, _)| kk == k) {
                Some(e) => e.1 = v,
                None => seg.push((k.to_owned(), v)),
            }
        }
        rec.segment = Some(seg);
    }
    for _ in 7..n.max(7) {
        r.skip()?;
    }
    Ok(rec)
}

pub fn write_rec(b: &mut Vec<u8>, rec: &Rec) {
    mp::w_array(b, 7);
    mp::w_int(b, rec.time_us);
    mp::w_int(b, rec.typ as i64);
    mp::w_str(b, &rec.id);
    mp::w_opt_str(b, rec.ref_.as_deref());
    mp::w_opt_str(b, rec.text.as_deref());
    mp::w_opt_int(b, rec.value);
    match &rec.segment {
        None => mp::w_nil(b),
        Some(seg) => {
            mp::w_map(b, seg.len());
            for (k, v) in seg {
                mp::w_str(b, k);
                mp::w_str(b, v);
            }
        }
    }
}

pub struct State {
    pub records: Vec<Rec>,
    pub newest_us: Option<i64>,
    pub facts: Vec<u8>,
}

pub fn decode_state(raw: Option<&[u8]>) -> R<State> {
    let mut st = State { records: Vec::new(), newest_us: None, facts: Vec::new() };
    let Some(raw) = raw else { return Ok(st) };
    let mut r = Rd::new(raw);
    let n = r.array()?;
    if n > 0 {
        let m = r.array()?;
        st.records.reserve(m);
        for _ in 0..m {
            st.records.push(read_rec(&mut r)?);
        }
    }
    if n > 1 {
        st.newest_us = r.opt_int()?;
    }
    if n > 2 {
        st.facts = r.bin()?.to_vec();
    }
    for _ in 3..n.max(3) {
        r.skip()?;
    }
    if !r.done() {
        return Err("trailing characters".into());
    }
    Ok(st)
}

pub fn encode_state(records: &[Rec], newest: Option<i64>, facts: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(64 + records.len() * 48 + facts.len());
    mp::w_array(&mut b, 3);
    mp::w_array(&mut b, records.len());
    for rec in records {
        write_rec(&mut b, rec);
    }
    mp::w_opt_int(&mut b, newest);
    mp::w_bin(&mut b, facts);
    b
}

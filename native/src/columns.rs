//! The write side of the KPI store's fact index (`metrics.index.FactIndex`): facts appended as rows
//! with interned kind and segment-combination ids, and handed back grouped by (kind, UTC day) as the
//! column bytes the index's day chunks append in one call each. Appending a fact in Python was most
//! of the store's CPU per event; here it is a push, and the grouping is one sort per flush.

use crate::mp::{Rd, R};
use std::collections::HashMap;

pub const DAY_US: i64 = 86_400_000_000;
/// The stored value of a fact without one (`metrics.day_columns.NO_VALUE`).
pub const NO_VALUE: i64 = i64::MIN;

#[derive(Clone, Copy)]
struct Row {
    t: i64,
    v: i64,
    who: i64,
    kind: u16,
    combo: u16,
    w: i8,
}

/// One (kind, day)'s rows as column bytes (native byte order, as `array.array` reads them), plus
/// what the chunk keeps of them.
pub struct DayGroup {
    pub day: i64,
    pub t: Vec<u8>,
    pub v: Vec<u8>,
    pub c: Vec<u8>,
    pub who: Vec<u8>,
    pub w: Vec<u8>,
    pub negatives: i64,
    pub min_t: i64,
    pub max_t: i64,
    pub max_v: i64,
}

/// Interned ids in first-seen order: the index's combination ids are positions in this list.
#[derive(Default)]
pub struct Interner {
    ids: HashMap<Vec<String>, u16>,
    pub items: Vec<Vec<String>>,
}

impl Interner {
    pub fn id(&mut self, item: &[&str]) -> R<u16> {
        let key: Vec<String> = item.iter().map(|s| (*s).to_owned()).collect();
        if let Some(&id) = self.ids.get(&key) {
            return Ok(id);
        }
        let id = u16::try_from(self.items.len()).map_err(|_| "more than 65,536 kinds or segment combinations")?;
        self.ids.insert(key.clone(), id);
        self.items.push(key);
        Ok(id)
    }
}

#[derive(Default)]
pub struct Buffer {
    pub kinds: Interner,
    pub combos: Interner,
    rows: Vec<Row>,
    net: i64,
}

impl Buffer {
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn push(&mut self, t: i64, kind: u16, combo: u16, value: Option<i64>, who: i64, w: i8) {
        self.rows.push(Row {
            t,
            v: value.unwrap_or(NO_VALUE),
            who,
            kind,
            combo,
            w,
        });
        self.net += w as i64;
    }

    /// Every fact of a blob (`metrics.blob`), with weight `w`; nothing is pushed if the blob is bad.
    pub fn push_blob(&mut self, blob: &[u8], who: i64, w: i8) -> R<()> {
        let mut r = Rd::new(blob);
        if r.array()? != 3 {
            return Err("Expected `array` of length 3".into());
        }
        let nk = r.array()?;
        let mut kinds = Vec::with_capacity(nk);
        for _ in 0..nk {
            kinds.push(self.kinds.id(&[r.str()?])?);
        }
        let nc = r.array()?;
        let mut combos = Vec::with_capacity(nc);
        for _ in 0..nc {
            let n = r.array()?;
            let mut keys = Vec::with_capacity(n);
            for _ in 0..n {
                keys.push(r.str()?);
            }
            combos.push(self.combos.id(&keys)?);
        }
        let nr = r.array()?;
        let start = self.rows.len();
        for _ in 0..nr {
            let row = (|| -> R<Row> {
                if r.array()? != 4 {
                    return Err("Expected `array` of length 4".into());
                }
                let t = r.int()?;
                let kind = *kinds.get(r.int()? as usize).ok_or("list index out of range")?;
                let combo = *combos.get(r.int()? as usize).ok_or("list index out of range")?;
                Ok(Row {
                    t,
                    v: r.opt_int()?.unwrap_or(NO_VALUE),
                    who,
                    kind,
                    combo,
                    w,
                })
            })();
            match row {
                Ok(row) => self.rows.push(row),
                Err(e) => {
                    self.rows.truncate(start);
                    return Err(e);
                }
            }
        }
        if !r.done() {
            self.rows.truncate(start);
            return Err("trailing characters".into());
        }
        self.net += nr as i64 * w as i64;
        Ok(())
    }

    /// The rows so far grouped by kind, then day (arrival order kept within a group), and their net
    /// weight; the buffer is empty afterwards.
    pub fn drain(&mut self) -> (Vec<(u16, Vec<DayGroup>)>, i64) {
        let mut rows = std::mem::take(&mut self.rows);
        let net = std::mem::take(&mut self.net);
        rows.sort_by_key(|r| (r.kind, r.t.div_euclid(DAY_US)));
        let mut out: Vec<(u16, Vec<DayGroup>)> = Vec::new();
        for r in rows {
            let day = r.t.div_euclid(DAY_US);
            if out.last().map(|(k, _)| *k) != Some(r.kind) {
                out.push((r.kind, Vec::new()));
            }
            let groups = &mut out.last_mut().expect("pushed above").1;
            if groups.last().map(|g| g.day) != Some(day) {
                groups.push(DayGroup {
                    day,
                    t: Vec::new(),
                    v: Vec::new(),
                    c: Vec::new(),
                    who: Vec::new(),
                    w: Vec::new(),
                    negatives: 0,
                    min_t: r.t,
                    max_t: r.t,
                    max_v: r.v,
                });
            }
            let g = groups.last_mut().expect("pushed above");
            g.t.extend_from_slice(&r.t.to_ne_bytes());
            g.v.extend_from_slice(&r.v.to_ne_bytes());
            g.c.extend_from_slice(&r.combo.to_ne_bytes());
            g.who.extend_from_slice(&r.who.to_ne_bytes());
            g.w.push(r.w as u8);
            g.negatives += (r.w < 0) as i64;
            g.min_t = g.min_t.min(r.t);
            g.max_t = g.max_t.max(r.t);
            g.max_v = g.max_v.max(r.v);
        }
        (out, net)
    }
}

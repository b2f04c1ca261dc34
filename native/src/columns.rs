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

/// One kind's drained rows, day after day, as column bytes (native byte order, as numpy reads them),
/// and per day where its rows end and what its chunk keeps of them: one set of buffers a kind, not a
/// set a day, so a flush over hundreds of days hands Python a few objects.
#[derive(Default)]
pub struct KindRows {
    pub days: Vec<i64>,
    pub ends: Vec<i64>,
    pub t: Vec<u8>,
    pub v: Vec<u8>,
    pub c: Vec<u8>,
    pub who: Vec<u8>,
    pub w: Vec<u8>,
    pub negatives: Vec<i64>,
    pub min_t: Vec<i64>,
    pub max_t: Vec<i64>,
    pub max_v: Vec<i64>,
}

impl KindRows {
    fn push(&mut self, r: &Row) {
        let day = r.t.div_euclid(DAY_US);
        if self.days.last() != Some(&day) {
            self.days.push(day);
            self.ends.push(self.ends.last().copied().unwrap_or(0));
            self.negatives.push(0);
            self.min_t.push(r.t);
            self.max_t.push(r.t);
            self.max_v.push(r.v);
        }
        let last = self.days.len() - 1;
        self.t.extend_from_slice(&r.t.to_ne_bytes());
        self.v.extend_from_slice(&r.v.to_ne_bytes());
        self.c.extend_from_slice(&r.combo.to_ne_bytes());
        self.who.extend_from_slice(&r.who.to_ne_bytes());
        self.w.push(r.w as u8);
        self.ends[last] += 1;
        self.negatives[last] += (r.w < 0) as i64;
        self.min_t[last] = self.min_t[last].min(r.t);
        self.max_t[last] = self.max_t[last].max(r.t);
        self.max_v[last] = self.max_v[last].max(r.v);
    }
}

/// Interned ids in first-seen order: the index's combination ids are positions in this list. A lookup
/// builds its key in a reused buffer (each string's length, then its bytes), so a blob's kinds and
/// combinations are found without allocating.
#[derive(Default)]
pub struct Interner {
    ids: HashMap<Vec<u8>, u16>,
    pub items: Vec<Vec<String>>,
    scratch: Vec<u8>,
}

impl Interner {
    pub fn id(&mut self, item: &[&str]) -> R<u16> {
        self.scratch.clear();
        for s in item {
            self.scratch.extend_from_slice(&(s.len() as u64).to_le_bytes());
            self.scratch.extend_from_slice(s.as_bytes());
        }
        if let Some(&id) = self.ids.get(self.scratch.as_slice()) {
            return Ok(id);
        }
        let id = u16::try_from(self.items.len()).map_err(|_| "more than 65,536 kinds or segment combinations")?;
        self.ids.insert(self.scratch.clone(), id);
        self.items.push(item.iter().map(|s| (*s).to_owned()).collect());
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

    /// Where the buffer is now, to go back to with :meth:`rollback` (only rows and their weight: ids
    /// interned meanwhile stay, as a failed push leaves them too).
    pub fn mark(&self) -> (usize, i64) {
        (self.rows.len(), self.net)
    }

    pub fn rollback(&mut self, mark: (usize, i64)) {
        self.rows.truncate(mark.0);
        self.net = mark.1;
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

    /// The rows so far grouped by kind, then day (arrival order kept within a day), and their net
    /// weight; the buffer is empty afterwards.
    pub fn drain(&mut self) -> (Vec<(u16, KindRows)>, i64) {
        let mut rows = std::mem::take(&mut self.rows);
        let net = std::mem::take(&mut self.net);
        rows.sort_by_key(|r| (r.kind, r.t.div_euclid(DAY_US)));
        let mut out: Vec<(u16, KindRows)> = Vec::new();
        for r in &rows {
            if out.last().map(|(k, _)| *k) != Some(r.kind) {
                out.push((r.kind, KindRows::default()));
            }
            out.last_mut().expect("pushed above").1.push(r);
        }
        (out, net)
    }
}

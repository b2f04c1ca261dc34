//! The changelog follower's fast path (`retention_native.follow`): a fetched batch of one partition's
//! entries applied to the KPI store's key table and fact buffer in one call, as
//! `metrics.store.KpiStore.update` applies them one by one. It takes the entries the follower meets
//! every time — a key's first entry, a delta from the facts held, a redelivered entry — and stops at
//! the first one it does not take: a tombstone, a delta that does not chain (a repair), or anything
//! that does not decode exactly as msgspec would. The Python path applies that one, with its errors,
//! and the fast path goes on after it, so the batch is applied in order either way.

use crate::buffer::PyBuffer;
use crate::columns::Buffer;
use crate::keytable::KeyTable;
use crate::mp::{Rd, R};
use crate::records::decode_state;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

const REP_PREFIX: &[u8] = b"rep:";

/// What one call applied (see `retention_native.pyi`).
#[pyclass(frozen, get_all)]
pub struct Followed {
    /// The index of the first entry not applied: the batch's length when all were.
    next: usize,
    applied: usize,
    customers: i64,
    newest_us: Option<i64>,
    published_ms: Py<PyBytes>,
    written_ms: Py<PyBytes>,
}

/// `metrics.store.who_of`: a stable id in `[1, 2**62]` of a key.
pub fn who_of(key: &[u8]) -> i64 {
    (crate::blob::digest64(key) >> 2) as i64 + 1
}

/// The fields of `streams.wire.Change` the store needs, when the entry is exactly as msgspec reads it.
struct Change<'a> {
    state: &'a [u8],
    before: i64,
    after: i64,
    removed: &'a [u8],
    added: &'a [u8],
    newest_us: Option<i64>,
    timestamp_ms: i64,
}

fn read_change(value: &[u8]) -> R<Change<'_>> {
    let mut r = Rd::new(value);
    let n = r.array()?;
    if !(6..=7).contains(&n) {
        return Err(format!("a change of {n} fields"));
    }
    let (state, before, after) = (r.bin()?, r.int()?, r.int()?);
    let (removed, added, newest_us) = (r.bin()?, r.bin()?, r.opt_int()?);
    let timestamp_ms = if n == 7 { r.int()? } else { 0 };
    if !r.done() {
        return Err("trailing bytes".into());
    }
    Ok(Change { state, before, after, removed, added, newest_us, timestamp_ms })
}

/// Running totals of a call.
#[derive(Default)]
struct Totals {
    applied: usize,
    customers: i64,
    newest_us: Option<i64>,
    published: Vec<u8>,
    written: Vec<u8>,
}

/// Apply one entry and give its input timestamp; None (and nothing changed) when the Python path
/// must take it.
fn apply(table: &mut KeyTable, buffer: &mut Buffer, key: &[u8], value: &[u8], totals: &mut Totals) -> Option<i64> {
    let change = read_change(value).ok()?;
    let who = who_of(key);
    match table.get(who) {
        None => {
            let state = decode_state(Some(change.state)).ok()?;
            buffer.push_blob(&state.facts, who, 1).ok()?;
            if !key.starts_with(REP_PREFIX) {
                totals.customers += 1;
            }
        }
        Some(held) if held == change.after => {}
        Some(held) if held == change.before => {
            let mark = buffer.mark();
            if buffer.push_blob(change.removed, who, -1).is_err() || buffer.push_blob(change.added, who, 1).is_err() {
                buffer.rollback(mark);
                return None;
            }
        }
        Some(_) => return None,
    }
    table.put(who, change.after);
    if let Some(t) = change.newest_us {
        totals.newest_us = Some(totals.newest_us.map_or(t, |n| n.max(t)));
    }
    totals.applied += 1;
    Some(change.timestamp_ms)
}

/// Apply `records` (objects with `key`, `value` and `timestamp`, as aiokafka's) from index `start` on,
/// until one the fast path does not take. `written_ms` holds the record timestamps of the entries in
/// `published_ms` (those with an input timestamp).
#[pyfunction]
pub fn follow(
    py: Python<'_>,
    table: &Bound<'_, KeyTable>,
    buffer: &Bound<'_, PyBuffer>,
    records: &Bound<'_, PyList>,
    start: usize,
) -> PyResult<Followed> {
    let (mut table, mut buffer) = (table.borrow_mut(), buffer.borrow_mut());
    let mut totals = Totals::default();
    let mut next = start;
    while next < records.len() {
        let record = records.get_item(next)?;
        let (key, value) = (record.getattr(intern!(py, "key"))?, record.getattr(intern!(py, "value"))?);
        let (Ok(key), Ok(value)) = (key.cast::<PyBytes>(), value.cast::<PyBytes>()) else { break };
        let Ok(written) = record.getattr(intern!(py, "timestamp"))?.extract::<i64>() else { break };
        let Some(published) = apply(&mut table, &mut buffer.inner, key.as_bytes(), value.as_bytes(), &mut totals)
        else {
            break;
        };
        if published != 0 {
            totals.published.extend_from_slice(&published.to_ne_bytes());
            totals.written.extend_from_slice(&written.to_ne_bytes());
        }
        next += 1;
    }
    Ok(Followed {
        next,
        applied: totals.applied,
        customers: totals.customers,
        newest_us: totals.newest_us,
        published_ms: PyBytes::new(py, &totals.published).unbind(),
        written_ms: PyBytes::new(py, &totals.written).unbind(),
    })
}

//! The route stage's fast path (`streams/route/stage.py`): a fetch's valid events read, recorded,
//! re-keyed and packed per partition without Python objects per event. Messages the fast path does
//! not take (headers, tombstones, anything `contract::fast` leaves) stay pending in the `Fetch`; the
//! stage decodes those in Python and fills or drops their slots, so the packs keep the fetch's order.

use crate::contract::{fast, Money};
use crate::mp;
use crate::records::write_rec;
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

const PENDING: u32 = u32::MAX;
const DROPPED: u32 = u32::MAX - 1;

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

static CRC: [u32; 256] = crc_table();

/// `zlib.crc32`, as `streams.wire.partition_of` uses it.
pub fn crc32(b: &[u8]) -> u32 {
    !b.iter().fold(!0u32, |c, &x| CRC[((c ^ u32::from(x)) & 0xff) as usize] ^ (c >> 8))
}

#[derive(Clone, Copy)]
struct Slot {
    partition: u32,
    start: usize,
    end: usize,
    raw: usize,
}

/// One fetch's routed events in input order: encoded `streams.wire.Routed`s, or pending/dropped slots.
#[pyclass(name = "Fetch")]
#[derive(Default)]
pub struct Fetch {
    buf: Vec<u8>,
    slots: Vec<Slot>,
}

impl Fetch {
    /// Where `bytes` lie in `buf` once appended.
    fn append(&mut self, bytes: &[u8]) -> (usize, usize) {
        let start = self.buf.len();
        self.buf.extend_from_slice(bytes);
        (start, self.buf.len())
    }

    fn push(&mut self, partition: u32, encoded: &[u8], raw: usize) {
        let (start, end) = self.append(encoded);
        self.slots.push(Slot { partition, start, end, raw });
    }

    fn slot(&mut self, slot: usize) -> PyResult<&mut Slot> {
        match self.slots.get_mut(slot) {
            Some(s) if s.partition == PENDING => Ok(s),
            _ => Err(PyValueError::new_err(format!("slot {slot} is not pending"))),
        }
    }
}

#[pymethods]
impl Fetch {
    #[new]
    fn new() -> Self {
        Fetch::default()
    }

    fn __len__(&self) -> usize {
        self.slots.len()
    }

    /// A pending slot's event, routed by the full decoder: its partition, encoded `Routed`, raw size.
    fn fill(&mut self, slot: usize, partition: u32, routed: &[u8], raw: usize) -> PyResult<()> {
        self.slot(slot)?;
        let (start, end) = self.append(routed);
        *self.slot(slot)? = Slot { partition, start, end, raw };
        Ok(())
    }

    /// A pending slot's message was rejected (it went to the dead-letter topic).
    fn drop(&mut self, slot: usize) -> PyResult<()> {
        self.slot(slot)?.partition = DROPPED;
        Ok(())
    }

    /// `(partition, pack)` in order of each partition's first event; a pack holds events until their
    /// raw payloads (+100 bytes each) pass `pack_bytes` (a single huge event goes alone).
    fn packs<'py>(&self, py: Python<'py>, pack_bytes: usize) -> PyResult<Vec<(u32, Bound<'py, PyBytes>)>> {
        let mut order: Vec<(u32, Vec<Slot>)> = Vec::new();
        for s in &self.slots {
            match s.partition {
                PENDING => return Err(PyValueError::new_err("a fetch was packed with a slot still pending")),
                DROPPED => {}
                p => match order.iter_mut().find(|(q, _)| *q == p) {
                    Some((_, v)) => v.push(*s),
                    None => order.push((p, vec![*s])),
                },
            }
        }
        let mut out = Vec::new();
        for (partition, slots) in order {
            let mut start = 0;
            let mut size = 0;
            for i in 0..=slots.len() {
                let close = i == slots.len() || (i > start && size + slots[i].raw > pack_bytes);
                if close && i > start {
                    out.push((partition, PyBytes::new(py, &self.pack(&slots[start..i]))));
                    (start, size) = (i, 0);
                }
                if i < slots.len() {
                    size += slots[i].raw + 100;
                }
            }
        }
        Ok(out)
    }
}

impl Fetch {
    fn pack(&self, slots: &[Slot]) -> Vec<u8> {
        let mut b = Vec::with_capacity(slots.iter().map(|s| s.end - s.start).sum::<usize>() + 5);
        mp::w_array(&mut b, slots.len());
        for s in slots {
            b.extend_from_slice(&self.buf[s.start..s.end]);
        }
        b
    }
}

/// The route stage's settings for the fast path: money, partitions of the re-keyed topic, size limit.
#[pyclass(frozen, name = "Router")]
pub struct Router {
    money: Money,
    partitions: u32,
    max_bytes: usize,
}

#[pymethods]
impl Router {
    #[new]
    fn new(reporting: String, rates: Vec<(String, f64)>, partitions: u32, max_bytes: usize) -> PyResult<Self> {
        if partitions == 0 {
            return Err(PyValueError::new_err("partitions must be at least 1"));
        }
        Ok(Router { money: Money { reporting, rates }, partitions, max_bytes })
    }

    /// Routes one input partition's `records` (objects with `value`, `headers`, `offset`, `timestamp`)
    /// into `fetch`, one slot each; gives the indices of the records left pending.
    fn scan(&self, fetch: &mut Fetch, records: &Bound<'_, PyList>, topic: &str, source: i64) -> PyResult<Vec<usize>> {
        let py = records.py();
        let mut pending = Vec::new();
        let mut one = Vec::with_capacity(1024);
        for (i, r) in records.iter().enumerate() {
            let value = r.getattr(intern!(py, "value"))?;
            let headers = r.getattr(intern!(py, "headers"))?;
            let routed = match value.cast::<PyBytes>() {
                Ok(v) if !headers.is_truthy()? && v.as_bytes().len() <= self.max_bytes => {
                    fast(v.as_bytes(), &self.money).map(|(rec, key)| (v.as_bytes(), rec, key))
                }
                _ => None,
            };
            let Some((raw, rec, key)) = routed else {
                fetch.slots.push(Slot { partition: PENDING, start: 0, end: 0, raw: 0 });
                pending.push(i);
                continue;
            };
            let offset: i64 = r.getattr(intern!(py, "offset"))?.extract()?;
            let timestamp: i64 = r.getattr(intern!(py, "timestamp"))?.extract()?;
            one.clear();
            mp::w_array(&mut one, 7);
            mp::w_bin(&mut one, key.as_bytes());
            write_rec(&mut one, &rec);
            mp::w_bin(&mut one, raw);
            mp::w_str(&mut one, topic);
            mp::w_int(&mut one, source);
            mp::w_int(&mut one, offset);
            mp::w_int(&mut one, timestamp);
            fetch.push(crc32(key.as_bytes()) % self.partitions, &one, raw.len());
        }
        Ok(pending)
    }
}

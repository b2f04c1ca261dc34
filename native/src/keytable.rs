//! `retention_native.KeyTable`: the KPI store's map from 63-bit customer ids to the checksum of the
//! fact set it holds per key. Open addressing in two int64 arrays (16 bytes a slot at a load of at most
//! 1/2; a Python dict of ints costs ~100 bytes an entry), linear probing from `id & mask`, 0 for an
//! empty slot. Checkpoints store the two arrays as they are, so this layout is a file format too.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

const EMPTY: i64 = 0;

#[pyclass(name = "KeyTable")]
pub struct KeyTable {
    keys: Vec<i64>,
    values: Vec<i64>,
    len: usize,
}

impl KeyTable {
    fn sized(capacity: usize) -> Self {
        let wanted = (capacity.max(1) * 2 - 1).max(1);
        let bits = (usize::BITS - wanted.leading_zeros()).max(4);
        KeyTable { keys: vec![EMPTY; 1 << bits], values: vec![0; 1 << bits], len: 0 }
    }

    fn slot(&self, key: i64) -> usize {
        let mask = self.keys.len() - 1;
        let mut slot = key as usize & mask;
        loop {
            let k = self.keys[slot];
            if k == key || k == EMPTY {
                return slot;
            }
            slot = (slot + 1) & mask;
        }
    }

    pub fn get(&self, who: i64) -> Option<i64> {
        let slot = self.slot(who);
        (self.keys[slot] != EMPTY).then(|| self.values[slot])
    }

    /// `who` must be positive (ids come from `store::who`, which never gives 0).
    pub fn put(&mut self, who: i64, value: i64) {
        let slot = self.slot(who);
        if self.keys[slot] == EMPTY {
            self.keys[slot] = who;
            self.len += 1;
        }
        self.values[slot] = value;
        if self.len * 2 > self.keys.len() {
            self.grow();
        }
    }

    /// Twice the slots, every key placed again in slot order.
    fn grow(&mut self) {
        let mut bigger = KeyTable { keys: vec![EMPTY; self.keys.len() * 2], values: vec![0; self.keys.len() * 2], len: 0 };
        for (&k, &v) in self.keys.iter().zip(&self.values) {
            if k != EMPTY {
                let slot = bigger.slot(k);
                bigger.keys[slot] = k;
                bigger.values[slot] = v;
                bigger.len += 1;
            }
        }
        *self = bigger;
    }
}

fn int64s(b: &[u8], what: &str) -> PyResult<Vec<i64>> {
    if b.len() % 8 != 0 || !(b.len() / 8).is_power_of_two() {
        return Err(PyValueError::new_err(format!("{what}: {} bytes are not a power-of-two count of int64", b.len())));
    }
    Ok(b.chunks_exact(8).map(|c| i64::from_ne_bytes(c.try_into().expect("8 bytes"))).collect())
}

#[pymethods]
impl KeyTable {
    #[new]
    #[pyo3(signature = (capacity = 1024))]
    fn new(capacity: usize) -> Self {
        Self::sized(capacity)
    }

    #[pyo3(name = "get")]
    fn py_get(&self, who: i128) -> Option<i64> {
        i64::try_from(who).ok().filter(|&w| w > 0).and_then(|w| self.get(w))
    }

    #[pyo3(name = "put")]
    fn py_put(&mut self, who: i128, value: i64) -> PyResult<()> {
        match i64::try_from(who) {
            Ok(w) if w > 0 => {
                self.put(w, value);
                Ok(())
            }
            _ => Err(PyValueError::new_err(format!("id {who} is not in [1, 2**63)"))),
        }
    }

    fn __len__(&self) -> usize {
        self.len
    }

    /// Bytes the slots take (Rust's heap: tracemalloc does not see them).
    fn nbytes(&self) -> usize {
        self.keys.len() * 16
    }

    fn __contains__(&self, who: i128) -> bool {
        self.py_get(who).is_some()
    }

    /// The slots as two int64 byte strings (keys, values), native byte order.
    fn to_bytes<'py>(&self, py: Python<'py>) -> (Bound<'py, PyBytes>, Bound<'py, PyBytes>) {
        (PyBytes::new(py, &crate::int64_bytes(&self.keys)), PyBytes::new(py, &crate::int64_bytes(&self.values)))
    }

    /// A table of slots written by :meth:`to_bytes`.
    #[staticmethod]
    fn from_bytes(keys: &[u8], values: &[u8]) -> PyResult<Self> {
        let (keys, values) = (int64s(keys, "keys")?, int64s(values, "values")?);
        if keys.len() != values.len() {
            return Err(PyValueError::new_err(format!("{} key slots but {} value slots", keys.len(), values.len())));
        }
        let len = keys.iter().filter(|&&k| k != EMPTY).count();
        Ok(KeyTable { keys, values, len })
    }
}

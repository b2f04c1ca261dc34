//! `retention_native.Schedule`: when each customer is next scored for risk (`streams.at_risk.tracker`).
//! Nearly every customer has a next check, so with a million of them a dict of keys and a heap of
//! `(time, key)` tuples cost about 200 bytes a customer; here a key is stored once (shared by the map
//! and the heap) and an entry costs about 100. A heap entry whose time is no longer the key's is stale
//! and skipped; the heap is rebuilt when stale entries outnumber the live ones.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

type Key = Arc<[u8]>;

#[pyclass]
#[derive(Default)]
pub struct Schedule {
    due: HashMap<Key, i64>,
    heap: BinaryHeap<Reverse<(i64, Key)>>,
}

impl Schedule {
    fn rebuild(&mut self) {
        self.heap = self.due.iter().map(|(k, &t)| Reverse((t, k.clone()))).collect();
    }
}

#[pymethods]
impl Schedule {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Check ``key`` at ``t`` (µs), or never (``None``).
    fn set(&mut self, key: &[u8], t: Option<i64>) {
        let Some(t) = t else {
            self.due.remove(key);
            return;
        };
        if self.due.get(key) == Some(&t) {
            return;
        }
        let key: Key = match self.due.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => Arc::from(key),
        };
        self.due.insert(key.clone(), t);
        self.heap.push(Reverse((t, key)));
        if self.heap.len() > 2 * self.due.len() + 1024 {
            self.rebuild();
        }
    }

    /// When ``key`` is due, if it is.
    fn get(&self, key: &[u8]) -> Option<i64> {
        self.due.get(key).copied()
    }

    /// The next key due at or before ``now``, taken off the schedule.
    fn pop_due<'py>(&mut self, py: Python<'py>, now: i64) -> Option<Bound<'py, PyBytes>> {
        while let Some(Reverse((t, _))) = self.heap.peek() {
            if *t > now {
                return None;
            }
            let Reverse((t, key)) = self.heap.pop().expect("peeked");
            if self.due.get(&key) == Some(&t) {
                self.due.remove(&key);
                return Some(PyBytes::new(py, &key));
            }
        }
        None
    }

    /// Whether a key is due at or before ``now``.
    fn any_due(&mut self, now: i64) -> bool {
        while let Some(Reverse((t, key))) = self.heap.peek() {
            if self.due.get(key) == Some(t) {
                return *t <= now;
            }
            self.heap.pop();
        }
        false
    }

    /// Forget the keys ``keep(key)`` is false for (partitions given away).
    fn retain(&mut self, keep: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut gone = Vec::new();
        for key in self.due.keys() {
            if !keep.call1((PyBytes::new(keep.py(), key),))?.is_truthy()? {
                gone.push(key.clone());
            }
        }
        for key in gone {
            self.due.remove(&key);
        }
        self.rebuild();
        Ok(())
    }

    fn scheduled<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        self.due.keys().map(|k| PyBytes::new(py, k)).collect()
    }

    fn __len__(&self) -> usize {
        self.due.len()
    }
}

//! The Python face of `columns::Buffer` (`retention_native.FactBuffer`), used by
//! `metrics.index.FactIndex` for every write.

use crate::columns::{Buffer, KindRows};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

#[pyclass(name = "FactBuffer")]
#[derive(Default)]
pub struct PyBuffer {
    pub(crate) inner: Buffer,
}

type Rows<'py> = (
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    (Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>),
    Bound<'py, PyBytes>,
    (Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>),
);

fn int64s<'py>(py: Python<'py>, values: &[i64]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &crate::int64_bytes(values))
}

fn rows<'py>(py: Python<'py>, k: KindRows) -> Rows<'py> {
    let b = |x: &[u8]| PyBytes::new(py, x);
    (
        int64s(py, &k.days),
        int64s(py, &k.ends),
        (b(&k.t), b(&k.v), b(&k.c), b(&k.who), b(&k.w)),
        int64s(py, &k.negatives),
        (int64s(py, &k.min_t), int64s(py, &k.max_t), int64s(py, &k.max_v)),
    )
}

fn strings(keys: &Bound<'_, PyTuple>) -> PyResult<Vec<String>> {
    keys.iter().map(|k| k.extract::<String>()).collect()
}

#[pymethods]
impl PyBuffer {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// The id of a segment combination (new ones get the next id).
    fn combo(&mut self, keys: &Bound<'_, PyTuple>) -> PyResult<u16> {
        let owned = strings(keys)?;
        let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
        self.inner.combos.id(&refs).map_err(PyValueError::new_err)
    }

    /// The combinations from id ``start`` on, as tuples.
    fn combos_from<'py>(&self, py: Python<'py>, start: usize) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        self.inner
            .combos
            .items
            .get(start..)
            .unwrap_or_default()
            .iter()
            .map(|c| PyTuple::new(py, c))
            .collect()
    }

    fn combo_count(&self) -> usize {
        self.inner.combos.items.len()
    }

    /// Facts ``(t, kind, keys, value)`` with weight ``w``; returns the rows buffered.
    fn push_facts(&mut self, facts: &Bound<'_, PyList>, who: i64, w: i8) -> PyResult<usize> {
        for f in facts.iter() {
            let f = f.cast_into::<PyTuple>()?;
            let t: i64 = f.get_borrowed_item(0)?.extract()?;
            let kind: String = f.get_borrowed_item(1)?.extract()?;
            let keys = f.get_borrowed_item(2)?;
            let combo = self.combo(&keys.cast::<PyTuple>().map_err(PyErr::from)?.to_owned())?;
            let value: Option<i64> = f.get_borrowed_item(3)?.extract()?;
            let kind = self.inner.kinds.id(&[&kind]).map_err(PyValueError::new_err)?;
            self.inner.push(t, kind, combo, value, who, w);
        }
        Ok(self.inner.len())
    }

    /// Every fact of a blob (``metrics.blob``) with weight ``w``; returns the rows buffered.
    fn push_blob(&mut self, blob: &[u8], who: i64, w: i8) -> PyResult<usize> {
        self.inner.push_blob(blob, who, w).map_err(PyValueError::new_err)?;
        Ok(self.inner.len())
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// ``([(kind, (days, ends, (t, v, c, who, w), negatives, (min t, max t, max v))), …], net weight)``:
    /// per kind its days' rows one day after another, as int64 bytes but the columns c (uint16) and w
    /// (int8); ``ends[i]`` is where day ``days[i]``'s rows end.
    fn drain<'py>(&mut self, py: Python<'py>) -> (Vec<(String, Rows<'py>)>, i64) {
        let (kinds, net) = self.inner.drain();
        let names = &self.inner.kinds.items;
        let out = kinds.into_iter().map(|(k, r)| (names[k as usize][0].clone(), rows(py, r))).collect();
        (out, net)
    }
}

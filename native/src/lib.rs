#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod blob;
mod buffer;
mod columns;
mod contract;
mod engine;
mod follow;
mod json;
mod keytable;
mod lookup;
mod mp;
mod omap;
mod packs;
mod prune;
mod records;
mod replay;
mod rfc3339;
mod route;
mod schedule;
mod segments;

use crate::engine::{Engine, Outcome, Update};
use crate::records::{valid_type, Rec};
use crate::replay::Ctx;
use crate::segments::Segmenter;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

/// The apply step of one worker's settings (see `streams.apply.processor.Processor`).
#[pyclass(frozen, name = "Engine")]
struct PyEngine {
    inner: Engine,
}

fn rec_from_py(o: &Bound<'_, PyAny>) -> PyResult<Rec> {
    let py = o.py();
    let time_us: i64 = o.getattr(intern!(py, "time_us"))?.extract()?;
    let typ: i64 = o.getattr(intern!(py, "type"))?.extract()?;
    if !valid_type(typ) {
        return Err(PyValueError::new_err(format!("invalid record type {typ}")));
    }
    let id: String = o.getattr(intern!(py, "id"))?.extract()?;
    let ref_: Option<String> = o.getattr(intern!(py, "ref"))?.extract()?;
    let text: Option<String> = o.getattr(intern!(py, "text"))?.extract()?;
    let value: Option<i64> = o.getattr(intern!(py, "value"))?.extract()?;
    let seg = o.getattr(intern!(py, "segment"))?;
    let segment = if seg.is_none() {
        None
    } else {
        let d = seg.cast::<PyDict>()?;
        let mut v = Vec::with_capacity(d.len());
        for (k, val) in d.iter() {
            v.push((k.extract::<String>()?, val.extract::<String>()?));
        }
        Some(v)
    };
    Ok(Rec { time_us, typ: typ as u8, id, ref_, text, value, segment })
}

fn to_py<'py>(py: Python<'py>, u: Update) -> PyResult<Bound<'py, PyTuple>> {
    let outcomes: Bound<'py, PyAny> = if u.outcomes.iter().all(|o| matches!(o, Outcome::Applied)) {
        py.None().into_bound(py)
    } else {
        let items: Vec<(&str, String)> = u
            .outcomes
            .into_iter()
            .map(|o| match o {
                Outcome::Applied => ("applied", String::new()),
                Outcome::Duplicate => ("duplicate", String::new()),
                Outcome::TooLate(m) => ("too_late", m),
                Outcome::Ignored(r) => ("ignored", r.to_owned()),
            })
            .collect();
        PyList::new(py, items)?.into_any()
    };
    let state = u.state.map(|s| PyBytes::new(py, &s));
    (outcomes, state, u.newest, u.before, u.after, PyBytes::new(py, &u.removed), PyBytes::new(py, &u.added))
        .into_pyobject(py)
}

#[pymethods]
impl PyEngine {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        dimensions: Vec<(String, Vec<String>)>,
        reasons: Vec<String>,
        categories: Vec<String>,
        lateness_us: i64,
        history_us: i64,
        lateness: String,
        history: String,
    ) -> Self {
        PyEngine {
            inner: Engine {
                ctx: Ctx {
                    seg: Segmenter::new(dimensions),
                    reasons: reasons.into_iter().collect(),
                    categories: categories.into_iter().collect(),
                    history_us,
                },
                lateness_us,
                history_us,
                lateness,
                history,
            },
        }
    }

    /// ``(outcomes | None when all applied, state | None, newest_us, before, after, removed blob, added blob)``
    fn apply_records<'py>(
        &self,
        py: Python<'py>,
        stored: Option<&[u8]>,
        records: &Bound<'py, PyList>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let recs = records.iter().map(|o| rec_from_py(&o)).collect::<PyResult<Vec<Rec>>>()?;
        let u = self.inner.apply_records(stored, recs).map_err(PyValueError::new_err)?;
        to_py(py, u)
    }

    /// One partition's packs (``streams.wire.Routed`` lists) applied; ``get_many(keys)`` gives the
    /// stored states of the keys. Returns ``(changes [(key, state, entry)], [(type code, events)],
    /// duplicates, [(ignored reason, events)], event times (int64 bytes), too late [(pack, index,
    /// why)], oldest input timestamp per pack)``.
    fn apply_packs<'py>(
        &self,
        py: Python<'py>,
        packs: Vec<Vec<u8>>,
        get_many: &Bound<'py, PyAny>,
    ) -> PyResult<Applied<'py>> {
        // Decoding and grouping the packs is most of a big turn's work outside the apply itself: without
        // the GIL, so a turn on the apply thread never holds the event loop up.
        let grouped = py
            .detach(|| {
                let views: Vec<&[u8]> = packs.iter().map(Vec::as_slice).collect();
                packs::group(&views)
            })
            .map_err(PyValueError::new_err)?;
        let keys: Vec<Bound<'py, PyBytes>> = grouped.keys.iter().map(|k| PyBytes::new(py, k)).collect();
        let stored: Vec<Option<Vec<u8>>> = get_many.call1((keys,))?.extract()?;
        if stored.len() != grouped.keys.len() {
            return Err(PyValueError::new_err("get_many returned a state count unlike the key count"));
        }
        let oldest = grouped.oldest.clone();
        let inner = &self.inner;
        let applied = py.detach(|| packs::apply(inner, grouped, stored)).map_err(PyValueError::new_err)?;
        Ok(applied_to_py(py, applied, oldest))
    }
}

type Applied<'py> = (
    Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>, Bound<'py, PyBytes>)>,
    Vec<(u8, i64)>,
    i64,
    Vec<(&'static str, i64)>,
    Bound<'py, PyBytes>,
    Vec<(usize, usize, String)>,
    Vec<i64>,
);

fn applied_to_py(py: Python<'_>, a: packs::Applied, oldest: Vec<i64>) -> Applied<'_> {
    let changes =
        a.changes.iter().map(|(k, s, e)| (PyBytes::new(py, k), PyBytes::new(py, s), PyBytes::new(py, e))).collect();
    let times = int64_bytes(&a.times);
    (changes, a.types.into_iter().collect(), a.duplicates, a.ignored.into_iter().collect(), PyBytes::new(py, &times),
     a.too_late, oldest)
}

/// A contiguous int64 array (numpy's, `array.array('q')`) read in place: the long answers hand over
/// columns of millions of facts, and copying them with the GIL held stalled the event loop.
struct Int64s {
    _held: PyBuffer<i64>, // keeps the exporter's memory alive and unmoved
    ptr: usize,
    len: usize,
}

impl Int64s {
    fn of(o: &Bound<'_, PyAny>) -> PyResult<Self> {
        let held = PyBuffer::<i64>::get(o)?;
        if !held.is_c_contiguous() {
            return Err(PyValueError::new_err("an int64 array must be contiguous"));
        }
        Ok(Int64s { ptr: held.buf_ptr() as usize, len: held.item_count(), _held: held })
    }

    /// The values. The callers pass arrays no other thread writes while the call runs (fresh joins
    /// of a frozen index), so reading them without the GIL is sound.
    fn values(&self) -> &[i64] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: a live, contiguous, aligned buffer of `len` int64s, held by `_held` (see above).
        unsafe { std::slice::from_raw_parts(self.ptr as *const i64, self.len) }
    }
}

/// Position of each int64 of ``needles`` in ``keys`` (distinct int64s), -1 where absent, as int64
/// bytes; computed without the GIL (a cohort scan runs beside the event loop).
#[pyfunction]
fn positions<'py>(py: Python<'py>, keys: &Bound<'py, PyAny>, needles: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let (keys, needles) = (Int64s::of(keys)?, Int64s::of(needles)?);
    let out = py.detach(|| int64_bytes(&lookup::positions(keys.values(), needles.values())));
    Ok(PyBytes::new(py, &out))
}

/// int64s as their bytes in native order (as numpy's `frombuffer` reads them).
pub(crate) fn int64_bytes(values: &[i64]) -> Vec<u8> {
    values.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

/// The distinct int64s of ``keys``, ascending, and per key the sum of each of ``columns`` (int64
/// arrays as long as ``keys``) over its rows, as int64 bytes; without the GIL (a CLV ranking runs
/// beside the event loop).
#[pyfunction]
fn sums_by_key<'py>(py: Python<'py>, keys: &Bound<'py, PyAny>, columns: Vec<Bound<'py, PyAny>>) -> PyResult<SumsByKey<'py>> {
    let keys = Int64s::of(keys)?;
    let columns = columns.iter().map(Int64s::of).collect::<PyResult<Vec<Int64s>>>()?;
    if let Some(c) = columns.iter().find(|c| c.len != keys.len) {
        return Err(PyValueError::new_err(format!("a column of {} values for {} keys", c.len, keys.len)));
    }
    let (distinct, sums) = py.detach(|| {
        let views: Vec<&[i64]> = columns.iter().map(Int64s::values).collect();
        let (distinct, sums) = lookup::sums_by_key(keys.values(), &views);
        (int64_bytes(&distinct), sums.iter().map(|s| int64_bytes(s)).collect::<Vec<_>>())
    });
    Ok((PyBytes::new(py, &distinct), sums.iter().map(|s| PyBytes::new(py, s)).collect()))
}

type SumsByKey<'py> = (Bound<'py, PyBytes>, Vec<Bound<'py, PyBytes>>);

#[pymodule]
fn retention_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEngine>()?;
    m.add_class::<buffer::PyBuffer>()?;
    m.add_class::<route::Router>()?;
    m.add_class::<route::Fetch>()?;
    m.add_class::<keytable::KeyTable>()?;
    m.add_class::<schedule::Schedule>()?;
    m.add_class::<follow::Followed>()?;
    m.add_function(wrap_pyfunction!(follow::follow, m)?)?;
    m.add_function(wrap_pyfunction!(positions, m)?)?;
    m.add_function(wrap_pyfunction!(sums_by_key, m)?)?;
    Ok(())
}

//! Facts and their compact blob (`metrics.blob`): kinds and segment combinations written once,
//! rows sorted, so equal fact sets are equal bytes; checksum and multiset difference.

use crate::mp::{self, Rd, R};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::rc::Rc;

pub type Keys = Rc<Vec<String>>;
pub type Kind = Cow<'static, str>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fact {
    pub t: i64,
    pub kind: Kind,
    pub keys: Keys,
    pub value: Option<i64>,
}

impl Ord for Fact {
    // metrics.blob._order: (t, kind, keys, value with None first)
    fn cmp(&self, o: &Self) -> Ordering {
        self.t
            .cmp(&o.t)
            .then_with(|| self.kind.as_ref().cmp(o.kind.as_ref()))
            .then_with(|| {
                if Rc::ptr_eq(&self.keys, &o.keys) {
                    Ordering::Equal
                } else {
                    self.keys.as_slice().cmp(o.keys.as_slice())
                }
            })
            .then_with(|| self.value.cmp(&o.value))
    }
}
impl PartialOrd for Fact {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// ``facts`` must be sorted (Fact's Ord is metrics.blob._order).
pub fn encode_sorted(facts: &[Fact]) -> Vec<u8> {
    let mut kinds: Vec<&str> = Vec::new();
    let mut combos: Vec<&Keys> = Vec::new();
    let mut rows: Vec<(i64, usize, usize, Option<i64>)> = Vec::with_capacity(facts.len());
    for f in facts {
        let k = match kinds.iter().position(|k| *k == f.kind.as_ref()) {
            Some(i) => i,
            None => {
                kinds.push(f.kind.as_ref());
                kinds.len() - 1
            }
        };
        let c = match combos.iter().position(|c| Rc::ptr_eq(c, &f.keys) || c.as_slice() == f.keys.as_slice()) {
            Some(i) => i,
            None => {
                combos.push(&f.keys);
                combos.len() - 1
            }
        };
        rows.push((f.t, k, c, f.value));
    }
    let mut b = Vec::with_capacity(16 + kinds.len() * 16 + combos.len() * 32 + rows.len() * 14);
    mp::w_array(&mut b, 3);
    mp::w_array(&mut b, kinds.len());
    for k in &kinds {
        mp::w_str(&mut b, k);
    }
    mp::w_array(&mut b, combos.len());
    for c in &combos {
        mp::w_array(&mut b, c.len());
        for s in c.iter() {
            mp::w_str(&mut b, s);
        }
    }
    mp::w_array(&mut b, rows.len());
    for (t, k, c, v) in rows {
        mp::w_array(&mut b, 4);
        mp::w_int(&mut b, t);
        mp::w_int(&mut b, k as i64);
        mp::w_int(&mut b, c as i64);
        mp::w_opt_int(&mut b, v);
    }
    b
}

pub fn decode_blob(blob: &[u8]) -> R<Vec<Fact>> {
    let mut r = Rd::new(blob);
    if r.array()? != 3 {
        return Err("Expected `array` of length 3".into());
    }
    let nk = r.array()?;
    let mut kinds: Vec<Kind> = Vec::with_capacity(nk);
    for _ in 0..nk {
        kinds.push(Cow::Owned(r.str()?.to_owned()));
    }
    let nc = r.array()?;
    let mut combos: Vec<Keys> = Vec::with_capacity(nc);
    for _ in 0..nc {
        let n = r.array()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(r.str()?.to_owned());
        }
        combos.push(Rc::new(v));
    }
    let nr = r.array()?;
    let mut out = Vec::with_capacity(nr);
    for _ in 0..nr {
        if r.array()? != 4 {
            return Err("Expected `array` of length 4".into());
        }
        let t = r.int()?;
        let k = r.int()?;
        let c = r.int()?;
        let v = r.opt_int()?;
        let kind = kinds.get(k as usize).ok_or("list index out of range")?.clone();
        let keys = combos.get(c as usize).ok_or("list index out of range")?.clone();
        out.push(Fact { t, kind, keys, value: v });
    }
    if !r.done() {
        return Err("trailing characters".into());
    }
    Ok(out)
}

/// The 8-byte BLAKE2b digest of `bytes` as a big-endian number (`metrics.blob.checksum` and
/// `metrics.store.who_of` shift it into their ranges).
pub fn digest64(bytes: &[u8]) -> u64 {
    use blake2::digest::{Update, VariableOutput};
    let mut h = blake2::Blake2bVar::new(8).expect("8 is a valid blake2b size");
    h.update(bytes);
    let mut out = [0u8; 8];
    h.finalize_variable(&mut out).expect("8 bytes");
    u64::from_be_bytes(out)
}

pub fn checksum(blob: &[u8]) -> i64 {
    (digest64(blob) >> 1) as i64
}

/// Multiset difference of two sorted fact lists: (removed, added).
pub fn difference(old: &[Fact], new: &[Fact]) -> (Vec<Fact>, Vec<Fact>) {
    let (mut i, mut j) = (0, 0);
    let (mut removed, mut added) = (Vec::new(), Vec::new());
    while i < old.len() && j < new.len() {
        match old[i].cmp(&new[j]) {
            Ordering::Less => {
                removed.push(old[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                added.push(new[j].clone());
                j += 1;
            }
            Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    removed.extend_from_slice(&old[i..]);
    added.extend_from_slice(&new[j..]);
    (removed, added)
}

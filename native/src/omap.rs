//! An insertion-ordered map: the replay iterates tickets and feedback in first-seen order, as
//! the reference's dicts do, so the facts come out in the same order.

use std::collections::HashMap;

/// Small insertion-ordered map (keys are few per customer; Python dicts keep insertion order).
pub struct OMap<V> {
    idx: HashMap<String, usize>,
    pub items: Vec<(String, V)>,
}
impl<V> OMap<V> {
    pub fn new() -> Self {
        OMap { idx: HashMap::new(), items: Vec::new() }
    }
    pub fn get(&self, k: &str) -> Option<&V> {
        self.idx.get(k).map(|&i| &self.items[i].1)
    }
    pub fn get_mut(&mut self, k: &str) -> Option<&mut V> {
        let i = *self.idx.get(k)?;
        Some(&mut self.items[i].1)
    }
    pub fn contains(&self, k: &str) -> bool {
        self.idx.contains_key(k)
    }
    pub fn entry_or(&mut self, k: &str, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.idx.get(k) {
            Some(&i) => i,
            None => {
                self.items.push((k.to_owned(), make()));
                self.idx.insert(k.to_owned(), self.items.len() - 1);
                self.items.len() - 1
            }
        };
        &mut self.items[i].1
    }
    pub fn insert(&mut self, k: &str, v: V) {
        match self.idx.get(k) {
            Some(&i) => self.items[i].1 = v,
            None => {
                self.items.push((k.to_owned(), v));
                self.idx.insert(k.to_owned(), self.items.len() - 1);
            }
        }
    }
}

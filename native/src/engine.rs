//! The apply step: dedupe, allowed lateness, merge, prune, replay and the fact delta of one key.

use crate::blob::{checksum, decode_blob, difference, encode_sorted};
use crate::mp::R;
use crate::prune::{prune, stream_of, STREAMS};
use crate::records::{decode_state, encode_state, Rec, State};
use crate::replay::{derive, Ctx};
use std::cmp::Ordering;
use std::collections::HashSet;

pub struct Engine {
    pub ctx: Ctx,
    pub lateness_us: i64,
    pub history_us: i64,
    pub lateness: String,
    pub history: String,
}

pub enum Outcome {
    Applied,
    Duplicate,
    TooLate(String),
    Ignored(&'static str),
}

pub struct Update {
    pub outcomes: Vec<Outcome>,
    pub state: Option<Vec<u8>>,
    pub newest: Option<i64>,
    pub before: i64,
    pub after: i64,
    pub removed: Vec<u8>,
    pub added: Vec<u8>,
}

impl Engine {
    fn judge(&self, time_us: i64, t: u8, key_newest: i64, stream_newest: Option<i64>) -> Option<String> {
        let (behind, what, limit) = if time_us < key_newest - self.history_us {
            (key_newest - time_us, "the newest event".to_owned(), format!("history={}", self.history))
        } else if let Some(s) = stream_newest.filter(|s| time_us < s - self.lateness_us) {
            (s - time_us, format!("the newest {} event", STREAMS[stream_of(t)]), format!("allowed_lateness={}", self.lateness))
        } else {
            return None;
        };
        Some(format!("{:.0}s behind {} of the same key, {}", behind as f64 / 1e6, what, limit))
    }

    fn old_facts(&self, old: &State) -> Vec<u8> {
        if !old.facts.is_empty() {
            return old.facts.clone();
        }
        let mut facts = if old.records.is_empty() { Vec::new() } else { derive(&old.records, &self.ctx).facts };
        facts.sort();
        encode_sorted(&facts)
    }

    pub fn apply_records(&self, stored: Option<&[u8]>, records: Vec<Rec>) -> R<Update> {
        let old = decode_state(stored)?;
        let mut newest = old.newest_us;
        let quick = self.lateness_us;
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(records.len());
        let mut added_idx: Vec<usize> = Vec::with_capacity(records.len());
        let mut by_stream: Option<[Option<i64>; 4]> = None;
        {
            let mut seen: HashSet<&str> = old.records.iter().map(|r| r.id.as_str()).collect();
            for (i, rec) in records.iter().enumerate() {
                if seen.contains(rec.id.as_str()) {
                    outcomes.push(Outcome::Duplicate);
                    continue;
                }
                if let Some(nw) = newest.filter(|nw| rec.time_us < nw - quick) {
                    let bs = by_stream.get_or_insert_with(|| {
                        let mut a = [None; 4];
                        for r in old.records.iter().chain(added_idx.iter().map(|&j| &records[j])) {
                            let s = stream_of(r.typ);
                            a[s] = Some(a[s].map_or(r.time_us, |v: i64| v.max(r.time_us)));
                        }
                        a
                    });
                    if let Some(msg) = self.judge(rec.time_us, rec.typ, nw, bs[stream_of(rec.typ)]) {
                        outcomes.push(Outcome::TooLate(msg));
                        continue;
                    }
                }
                seen.insert(rec.id.as_str());
                added_idx.push(i);
                newest = Some(newest.map_or(rec.time_us, |n| n.max(rec.time_us)));
                if let Some(bs) = by_stream.as_mut() {
                    let s = stream_of(rec.typ);
                    bs[s] = Some(bs[s].map_or(rec.time_us, |v| v.max(rec.time_us)));
                }
                outcomes.push(Outcome::Applied);
            }
        }
        if added_idx.is_empty() {
            return Ok(Update { outcomes, state: None, newest, before: 0, after: 0, removed: Vec::new(), added: Vec::new() });
        }
        let newest_v = newest.unwrap();
        let old_facts = self.old_facts(&old);
        let n_kept = old.records.len();
        let needs_sort = {
            let added_min = added_idx.iter().map(|&j| &records[j]).min_by(|a, b| a.key_cmp(b)).unwrap();
            (n_kept > 0 && added_min.key_cmp(&old.records[n_kept - 1]) == Ordering::Less) || added_idx.len() > 1
        };
        let mut merged = old.records;
        let record_ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
        let mut records_opt: Vec<Option<Rec>> = records.into_iter().map(Some).collect();
        for &j in &added_idx {
            merged.push(records_opt[j].take().unwrap());
        }
        if needs_sort {
            merged.sort_by(|a, b| a.key_cmp(b));
        }
        let merged = prune(merged, newest_v - self.history_us, self.history_us)?;
        let derived = derive(&merged, &self.ctx);
        if !derived.ignored.is_empty() {
            for (o, id) in outcomes.iter_mut().zip(&record_ids) {
                if matches!(o, Outcome::Applied) {
                    if let Some(reason) = derived.ignored.get(id.as_str()) {
                        *o = Outcome::Ignored(reason);
                    }
                }
            }
        }
        let mut facts = derived.facts;
        facts.sort();
        let new_blob = encode_sorted(&facts);
        let state = encode_state(&merged, newest, &new_blob);
        let (before, after, removed, added) = if old_facts == new_blob {
            let same = checksum(&new_blob);
            (same, same, encode_sorted(&[]), encode_sorted(&[]))
        } else {
            let mut old_list = decode_blob(&old_facts)?;
            old_list.sort();
            let (rm, ad) = difference(&old_list, &facts);
            (checksum(&old_facts), checksum(&new_blob), encode_sorted(&rm), encode_sorted(&ad))
        };
        Ok(Update { outcomes, state: Some(state), newest, before, after, removed, added })
    }
}

//! A partition's routed packs applied in one call (`streams.apply.stage.ApplyStage._apply`): decode
//! the packs (msgpack lists of `streams.wire.Routed`), group the events by key in first-seen order,
//! apply each key's events to its stored state, count the outcomes and write each changed key's
//! changelog entry (`streams.wire.Change`). Doing it event by event in Python cost more than the
//! apply itself.

use crate::engine::{Engine, Outcome, Update};
use crate::mp::{self, Rd, R};
use crate::records::{read_rec, Rec};
use std::collections::HashMap;

/// One event of a pack, with where it came from (a too-late event goes to the dead letters).
pub struct Item {
    pub rec: Rec,
    pub timestamp_ms: i64,
    pub pack: usize,
    pub index: usize,
}

/// The events of some packs by key, keys in first-seen order; per pack its oldest input timestamp
/// (0 when none has one).
pub struct Grouped {
    pub keys: Vec<Vec<u8>>,
    pub items: Vec<Vec<Item>>,
    pub oldest: Vec<i64>,
}

/// What the counting needs of an event once its record is handed to the engine.
struct Meta {
    typ: u8,
    time_us: i64,
    timestamp_ms: i64,
    pack: usize,
    index: usize,
}

#[derive(Default)]
pub struct Applied {
    /// (key, state, changelog entry) of every key whose state changed
    pub changes: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    /// events counted per record type code (too-late ones are not)
    pub types: HashMap<u8, i64>,
    pub duplicates: i64,
    pub ignored: HashMap<&'static str, i64>,
    /// event times of the counted events
    pub times: Vec<i64>,
    /// (pack, index in the pack, why) of each too-late event
    pub too_late: Vec<(usize, usize, String)>,
}

fn read_routed(r: &mut Rd, pack: usize, index: usize) -> R<(Vec<u8>, Item)> {
    if r.array()? != 7 {
        return Err("Expected `array` of length 7".into());
    }
    let key = r.bin()?.to_vec();
    let rec = read_rec(r)?;
    r.skip()?; // raw
    r.skip()?; // topic
    r.skip()?; // partition
    r.skip()?; // offset
    let timestamp_ms = r.int()?;
    Ok((
        key,
        Item {
            rec,
            timestamp_ms,
            pack,
            index,
        },
    ))
}

pub fn group(packs: &[&[u8]]) -> R<Grouped> {
    let mut at: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut g = Grouped {
        keys: Vec::new(),
        items: Vec::new(),
        oldest: Vec::with_capacity(packs.len()),
    };
    for (pack, bytes) in packs.iter().enumerate() {
        let mut r = Rd::new(bytes);
        let n = r.array()?;
        let mut oldest = 0;
        for index in 0..n {
            let (key, item) = read_routed(&mut r, pack, index)?;
            if item.timestamp_ms != 0 && (oldest == 0 || item.timestamp_ms < oldest) {
                oldest = item.timestamp_ms;
            }
            let slot = *at.entry(key).or_insert_with_key(|k| {
                g.keys.push(k.clone());
                g.items.push(Vec::new());
                g.keys.len() - 1
            });
            g.items[slot].push(item);
        }
        if !r.done() {
            return Err("trailing characters".into());
        }
        g.oldest.push(oldest);
    }
    Ok(g)
}

/// `streams.wire.Change` as msgspec writes it (an array of its seven fields).
pub fn change_entry(u: &Update, state: &[u8], timestamp_ms: i64) -> Vec<u8> {
    let mut b = Vec::with_capacity(state.len() + u.removed.len() + u.added.len() + 48);
    mp::w_array(&mut b, 7);
    mp::w_bin(&mut b, state);
    mp::w_int(&mut b, u.before);
    mp::w_int(&mut b, u.after);
    mp::w_bin(&mut b, &u.removed);
    mp::w_bin(&mut b, &u.added);
    mp::w_opt_int(&mut b, u.newest);
    mp::w_int(&mut b, timestamp_ms);
    b
}

impl Applied {
    /// Count one key's outcomes; the change entry's timestamp is the oldest input timestamp of its
    /// counted, not repeated events (the same walk as the Python stage did, zeros included).
    fn count(&mut self, items: &[Meta], outcomes: &[Outcome]) -> i64 {
        let mut first_ts = 0;
        for (item, outcome) in items.iter().zip(outcomes) {
            if let Outcome::TooLate(why) = outcome {
                self.too_late.push((item.pack, item.index, why.clone()));
                continue;
            }
            *self.types.entry(item.typ).or_insert(0) += 1;
            self.times.push(item.time_us);
            match outcome {
                Outcome::Duplicate => {
                    self.duplicates += 1;
                    continue;
                }
                Outcome::Ignored(why) => *self.ignored.entry(why).or_insert(0) += 1,
                _ => {}
            }
            if first_ts == 0 || item.timestamp_ms < first_ts {
                first_ts = item.timestamp_ms;
            }
        }
        first_ts
    }
}

/// Apply grouped events to their keys' stored states (`stored[i]` is the state of `g.keys[i]`).
pub fn apply(engine: &Engine, g: Grouped, stored: Vec<Option<Vec<u8>>>) -> R<Applied> {
    let mut out = Applied::default();
    for ((key, items), stored) in g.keys.into_iter().zip(g.items).zip(stored) {
        let meta: Vec<Meta> = items
            .iter()
            .map(|i| Meta {
                typ: i.rec.typ,
                time_us: i.rec.time_us,
                timestamp_ms: i.timestamp_ms,
                pack: i.pack,
                index: i.index,
            })
            .collect();
        let u = engine.apply_records(stored.as_deref(), items.into_iter().map(|i| i.rec).collect())?;
        let first_ts = out.count(&meta, &u.outcomes);
        if let Some(state) = &u.state {
            let entry = change_entry(&u, state, first_ts);
            out.changes.push((key, state.clone(), entry));
        }
    }
    Ok(out)
}

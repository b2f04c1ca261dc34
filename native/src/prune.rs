//! History bounds: which stream an event belongs to (for allowed lateness), and the folding of
//! records older than the history window into the few that still decide a fact.

use crate::mp::R;
use crate::records::*;
use std::collections::{HashMap, HashSet};

pub const STREAMS: [&str; 4] = ["customers and orders", "tickets", "surveys and feedback", "reps"];

#[inline]
pub fn stream_of(t: u8) -> usize {
    if t < 20 {
        0
    } else if t < 30 {
        1
    } else if t < 50 {
        2
    } else {
        3
    }
}


fn is_lifecycle(t: u8) -> bool {
    matches!(t, SIGNED_UP | UPDATED | CHURNED | REACTIVATED_T | REP_JOINED_T | REP_LEFT_T)
}
fn is_move(t: u8) -> bool {
    matches!(t, SIGNED_UP | UPDATED)
}
fn is_ticket(t: u8) -> bool {
    matches!(t, TICKET_OPENED_T | TICKET_REPLIED | TICKET_RESOLVED | TICKET_REOPENED)
}

/// `cutoff`: the history horizon; a resolved ticket is kept for `history_us` more, as long as a reply or
/// reopen of it could still count (`replay.rs`, `ticket_resolved_too_long_ago`).
pub fn prune(records: Vec<Rec>, cutoff: i64, history_us: i64) -> R<Vec<Rec>> {
    if records.is_empty() || records[0].time_us >= cutoff {
        return Ok(records);
    }
    let old: Vec<&Rec> = records.iter().filter(|r| r.time_us < cutoff).collect();
    let mut keep: Vec<Rec> = old.iter().filter(|r| is_lifecycle(r.typ)).map(|r| (*r).clone()).collect();
    keep.extend(fold(&old, ORDER_PLACED, "~folded-orders", 2, &records)?);
    keep.extend(fold(&old, ORDER_REFUNDED, "~folded-refunds", 0, &records)?);
    keep.extend(open_tickets(&records, cutoff, cutoff.saturating_sub(history_us)));
    keep.extend(records.iter().filter(|r| r.time_us >= cutoff).cloned());
    keep.sort_by(|a, b| a.key_cmp(b)); // stable, as list.sort
    Ok(keep)
}

fn fold(old: &[&Rec], t: u8, folded_id: &str, skip_first: usize, records: &[Rec]) -> R<Vec<Rec>> {
    let firsts: HashSet<&str> = records.iter().filter(|r| r.typ == t).take(skip_first).map(|r| r.id.as_str()).collect();
    let mut out: Vec<Rec> = old.iter().filter(|r| r.typ == t && firsts.contains(r.id.as_str())).map(|r| (*r).clone()).collect();
    let rest: Vec<&Rec> = old.iter().filter(|r| r.typ == t && !firsts.contains(r.id.as_str())).copied().collect();
    if rest.len() <= 1 {
        out.extend(rest.into_iter().cloned());
        return Ok(out);
    }
    let moves: Vec<&Rec> = records.iter().filter(|r| is_move(r.typ)).collect();
    let mut stretches: Vec<(usize, Vec<&Rec>)> = Vec::new(); // insertion-ordered by first appearance
    for r in rest {
        let k = (r.time_us, r.typ, r.id.as_str());
        let pos = moves.partition_point(|m| m.key_lt_tuple(k)); // bisect_left
        match stretches.iter_mut().find(|(p, _)| *p == pos) {
            Some((_, v)) => v.push(r),
            None => stretches.push((pos, vec![r])),
        }
    }
    for (_, recs) in stretches {
        if recs.len() == 1 {
            out.push(recs[0].clone());
            continue;
        }
        let last = recs[recs.len() - 1].time_us;
        let name = format!("{folded_id}@{last}");
        let mut sum: i64 = 0;
        for r in &recs {
            sum = sum.checked_add(r.value.unwrap_or(0)).ok_or("folded amount out of the supported range")?;
        }
        out.push(Rec { time_us: last, typ: t, id: name.clone(), ref_: Some(name), text: None, value: Some(sum), segment: None });
    }
    Ok(out)
}

fn open_tickets(records: &[Rec], cutoff: i64, closed_before: i64) -> Vec<Rec> {
    let mut by_ticket: Vec<(Option<&str>, Vec<&Rec>)> = Vec::new();
    let mut index: HashMap<Option<&str>, usize> = HashMap::new();
    for r in records.iter().filter(|r| is_ticket(r.typ)) {
        let k = r.ref_.as_deref();
        match index.get(&k) {
            Some(&i) => by_ticket[i].1.push(r),
            None => {
                index.insert(k, by_ticket.len());
                by_ticket.push((k, vec![r]));
            }
        }
    }
    let mut out = Vec::new();
    for (_, recs) in by_ticket {
        let opened = recs.iter().any(|r| r.typ == TICKET_OPENED_T);
        let last = recs[recs.len() - 1];
        let done = if opened {
            last.typ == TICKET_RESOLVED && last.time_us < closed_before
        } else {
            last.time_us < cutoff
        };
        if !done {
            out.extend(recs.iter().filter(|r| r.time_us < cutoff).map(|r| (*r).clone()));
        }
    }
    out
}

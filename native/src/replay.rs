//! Per-key replay: a key's records, in event-time order, become its KPI facts (`metrics.facts`).

use crate::blob::{Fact, Keys, Kind};
use crate::omap::OMap;
use crate::records::*;
use crate::segments::{label, Segmenter};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

/// A segment's orders before this one: (previous time, second previous time, min(orders, 2)).
type OrderHistory = (Option<i64>, Option<i64>, usize);

pub struct Ctx {
    pub seg: Segmenter,
    pub reasons: HashSet<String>,
    pub categories: HashSet<String>,
    pub history_us: i64,
}

#[derive(Default)]
struct Ticket {
    opened: Option<i64>,
    replied: bool,
    waits_for_reply: bool,
    reply_keys: Option<Keys>,
    resolution_keys: Option<Keys>,
    resolved: bool,
    resolved_at: i64,
    first_resolution_seen: bool,
}

pub struct Derived {
    pub facts: Vec<Fact>,
    pub ignored: HashMap<String, &'static str>,
}

#[derive(PartialEq, Clone, Copy)]
enum Life {
    Never,
    SignedUp,
    Churned,
    Reactivated,
}


struct Replay<'c> {
    ctx: &'c Ctx,
    all_only: Keys,
    facts: Vec<Fact>,
    ignored: HashMap<String, &'static str>,
    state: Life,
    raw: Vec<(String, String)>,
    keys: Keys,
    orders: HashMap<String, Vec<i64>>,
    refunded: HashSet<String>,
    returned: HashSet<String>,
    tickets: OMap<Ticket>,
    feedback: OMap<(i64, Keys)>,
    responded: HashSet<String>,
    rep_since: Option<i64>,
}

const K: fn(&'static str) -> Kind = Cow::Borrowed;

impl<'c> Replay<'c> {
    fn new(ctx: &'c Ctx) -> Self {
        let raw = Vec::new();
        let keys = ctx.seg.keys(&raw);
        Replay {
            ctx,
            all_only: Rc::new(vec!["all".to_owned()]),
            facts: Vec::with_capacity(32),
            ignored: HashMap::new(),
            state: Life::Never,
            raw,
            keys,
            orders: HashMap::new(),
            refunded: HashSet::new(),
            returned: HashSet::new(),
            tickets: OMap::new(),
            feedback: OMap::new(),
            responded: HashSet::new(),
            rep_since: None,
        }
    }
    #[inline]
    fn emit(&mut self, t: i64, kind: Kind, value: Option<i64>) {
        self.facts.push(Fact { t, kind, keys: self.keys.clone(), value });
    }
    #[inline]
    fn emit_k(&mut self, t: i64, kind: Kind, value: Option<i64>, keys: Keys) {
        self.facts.push(Fact { t, kind, keys, value });
    }
    fn ignore(&mut self, r: &Rec, reason: &'static str) {
        self.ignored.insert(r.id.clone(), reason);
    }

    /// Whether ticket `key` was resolved more than `history` before `t`: replies and reopens no longer
    /// count, so pruning may drop the ticket without changing what a later record does.
    fn closed(&self, key: &str, t: i64) -> bool {
        self.tickets.get(key).is_some_and(|tk| tk.resolved && t - tk.resolved_at > self.ctx.history_us)
    }

    fn mv(&mut self, t: i64, segment: Option<&Vec<(String, String)>>) {
        if let Some(seg) = segment {
            for (k, v) in seg {
                match self.raw.iter_mut().find(|(kk, _)| kk == k) {
                    Some(e) => e.1 = v.clone(),
                    None => self.raw.push((k.clone(), v.clone())),
                }
            }
        }
        let new_keys = self.ctx.seg.keys(&self.raw);
        if self.state != Life::Never && new_keys != self.keys {
            let lost = self.state == Life::Churned;
            let (mut olds, mut news) = (Vec::new(), Vec::new());
            for (o, n) in self.keys.iter().zip(new_keys.iter()) {
                if o != n {
                    olds.push(o.clone());
                    news.push(n.clone());
                }
            }
            self.emit_k(t, K(if lost { "lost_moved_out" } else { "moved_out" }), Some(1), Rc::new(olds));
            self.emit_k(t, K(if lost { "lost_moved_in" } else { "moved_in" }), Some(1), Rc::new(news));
        }
        self.keys = new_keys;
    }

    fn step(&mut self, r: &Rec) {
        let t = r.time_us;
        match r.typ {
            SIGNED_UP => {
                if self.state != Life::Never {
                    return self.ignore(r, "already_signed_up");
                }
                self.mv(t, r.segment.as_ref());
                self.emit(t, K("new"), Some(1));
                self.state = Life::SignedUp;
            }
            UPDATED => self.mv(t, r.segment.as_ref()),
            CHURNED => {
                if !matches!(self.state, Life::SignedUp | Life::Reactivated) {
                    return self.ignore(r, "churn_not_active");
                }
                self.emit(t, K("lost"), Some(1));
                let l = label(r.text.as_deref(), &self.ctx.reasons);
                self.emit(t, Cow::Owned(format!("lost_reason:{l}")), Some(1));
                self.state = Life::Churned;
            }
            REACTIVATED_T => {
                if self.state != Life::Churned {
                    return self.ignore(r, "reactivate_not_lost");
                }
                self.emit(t, K("reactivated"), Some(1));
                self.state = Life::Reactivated;
            }
            ORDER_PLACED => self.order(r),
            ORDER_REFUNDED => {
                self.emit(t, K("refund"), r.value);
                let new = match &r.ref_ {
                    None => true,
                    Some(s) => !self.refunded.contains(s.as_str()),
                };
                if new {
                    self.refunded.insert(r.ref_.clone().unwrap_or_default());
                    self.emit(t, K("refunded_order"), Some(1));
                }
            }
            ORDER_RETURNED => {
                self.emit(t, K("return"), Some(r.value.unwrap_or(0)));
                let new = match &r.ref_ {
                    None => true,
                    Some(s) => !self.returned.contains(s.as_str()),
                };
                if new {
                    self.returned.insert(r.ref_.clone().unwrap_or_default());
                    self.emit(t, K("returned_order"), Some(1));
                }
            }
            TICKET_OPENED_T => {
                let key = r.ref_.as_deref().unwrap_or("");
                let ticket = self.tickets.entry_or(key, Ticket::default);
                if ticket.opened.is_some() {
                    return self.ignore(r, "ticket_already_open");
                }
                ticket.opened = Some(t);
                ticket.waits_for_reply = true;
                ticket.reply_keys = Some(self.keys.clone());
                ticket.resolution_keys = Some(self.keys.clone());
                let text = match r.text.as_deref() {
                    None | Some("") => "request:",
                    Some(s) => s,
                };
                let (kind, category) = match text.split_once(':') {
                    Some((k, c)) => (k, c),
                    None => (text, ""),
                };
                self.emit(t, K("ticket_opened"), Some(1));
                if kind == "complaint" {
                    let l = label(if category.is_empty() { None } else { Some(category) }, &self.ctx.categories);
                    self.emit(t, Cow::Owned(format!("complaint:{l}")), Some(1));
                }
                self.emit(t, K("await_reply_in"), Some(1));
                self.emit(t, K("await_resolution_in"), Some(1));
            }
            TICKET_REPLIED => {
                let key = r.ref_.as_deref().unwrap_or("");
                if self.closed(key, t) {
                    return self.ignore(r, "ticket_resolved_too_long_ago");
                }
                let Some(ticket) = self.tickets.get_mut(key).filter(|tk| tk.opened.is_some()) else {
                    return self.ignore(r, "reply_to_unknown_ticket");
                };
                if r.text.as_deref() != Some("agent") || ticket.replied {
                    return;
                }
                ticket.replied = true;
                let first = (t - ticket.opened.unwrap()).max(0);
                let out = if ticket.waits_for_reply {
                    ticket.waits_for_reply = false;
                    ticket.reply_keys.clone()
                } else {
                    None
                };
                self.emit(t, K("first_response"), Some(first));
                if let Some(k) = out {
                    self.emit_k(t, K("await_reply_out"), Some(1), k);
                }
            }
            TICKET_RESOLVED => {
                let key = r.ref_.as_deref().unwrap_or("");
                let Some(ticket) = self.tickets.get_mut(key).filter(|tk| tk.opened.is_some() && !tk.resolved) else {
                    return self.ignore(r, "resolve_unknown_or_resolved_ticket");
                };
                ticket.resolved = true;
                ticket.resolved_at = t;
                let out = if ticket.waits_for_reply {
                    ticket.waits_for_reply = false;
                    ticket.reply_keys.clone()
                } else {
                    None
                };
                let resolution = if !ticket.first_resolution_seen {
                    ticket.first_resolution_seen = true;
                    Some((t - ticket.opened.unwrap()).max(0))
                } else {
                    None
                };
                let res_keys = ticket.resolution_keys.clone().unwrap();
                if let Some(k) = out {
                    self.emit_k(t, K("await_reply_out"), Some(1), k);
                }
                if let Some(v) = resolution {
                    self.emit(t, K("resolution"), Some(v));
                }
                self.emit_k(t, K("await_resolution_out"), Some(1), res_keys);
            }
            TICKET_REOPENED => {
                let key = r.ref_.as_deref().unwrap_or("");
                if self.closed(key, t) {
                    return self.ignore(r, "ticket_resolved_too_long_ago");
                }
                let keys = self.keys.clone();
                let Some(ticket) = self.tickets.get_mut(key).filter(|tk| tk.resolved) else {
                    return self.ignore(r, "reopen_not_resolved_ticket");
                };
                ticket.resolved = false;
                ticket.resolution_keys = Some(keys);
                self.emit(t, K("reopened"), Some(1));
                self.emit(t, K("await_resolution_in"), Some(1));
            }
            SURVEY_NPS => {
                let score = r.value.unwrap_or(0);
                let k = if score >= 9 {
                    "nps_promoter"
                } else if score >= 7 {
                    "nps_passive"
                } else {
                    "nps_detractor"
                };
                self.emit(t, K(k), Some(1));
            }
            SURVEY_CSAT => {
                self.emit(t, K("csat_response"), Some(1));
                if r.value.unwrap_or(0) >= 4 {
                    self.emit(t, K("csat_good"), Some(1));
                }
            }
            FEEDBACK_RECEIVED_T => {
                let key = r.ref_.as_deref().unwrap_or("");
                if self.feedback.contains(key) {
                    return self.ignore(r, "feedback_already_received");
                }
                self.feedback.insert(key, (t, self.keys.clone()));
                self.emit(t, K("feedback_received"), Some(1));
            }
            FEEDBACK_RESPONDED_T => {
                let key = r.ref_.as_deref().unwrap_or("");
                if !self.feedback.contains(key) {
                    return self.ignore(r, "response_to_unknown_feedback");
                }
                self.responded.insert(key.to_owned());
            }
            REP_JOINED_T => {
                if self.rep_since.is_some() {
                    return self.ignore(r, "rep_already_joined");
                }
                self.rep_since = Some(t);
                let k = self.all_only.clone();
                self.emit_k(t, K("rep_joined"), Some(1), k);
            }
            REP_LEFT_T => {
                let Some(since) = self.rep_since else {
                    return self.ignore(r, "rep_not_joined");
                };
                let k = self.all_only.clone();
                self.emit_k(t, K("rep_left"), Some(1), k.clone());
                self.emit_k(t, K("rep_stint"), Some(since), k);
                self.rep_since = None;
            }
            _ => unreachable!(),
        }
    }

    fn order(&mut self, r: &Rec) {
        let t = r.time_us;
        self.emit(t, K("order"), r.value);
        // the segment keys of each order history, in first-seen order
        let mut groups: Vec<(OrderHistory, Vec<String>)> = Vec::new();
        for key in self.keys.iter() {
            let times = match self.orders.get_mut(key.as_str()) {
                Some(v) => v,
                None => self.orders.entry(key.clone()).or_default(),
            };
            let n = times.len();
            let g = (
                if n >= 1 { Some(times[n - 1]) } else { None },
                if n >= 2 { Some(times[n - 2]) } else { None },
                n.min(2),
            );
            times.push(t);
            match groups.iter_mut().find(|(k, _)| *k == g) {
                Some((_, v)) => v.push(key.clone()),
                None => groups.push((g, vec![key.clone()])),
            }
        }
        for ((previous, second, n), keys) in groups {
            let group: Keys = if keys.len() == self.keys.len() { self.keys.clone() } else { Rc::new(keys) };
            if let Some(p) = previous {
                self.emit_k(p, K("order_pair1"), Some(t), group.clone());
            }
            if let Some(p) = second {
                self.emit_k(p, K("order_pair2"), Some(t), group.clone());
            }
            if n < 2 {
                self.emit_k(t, K(if n == 0 { "order_first" } else { "order_second" }), Some(1), group);
            }
        }
    }

    fn finish(mut self) -> Derived {
        let feedback = std::mem::replace(&mut self.feedback, OMap::new());
        for (r, (t, keys)) in feedback.items {
            if self.responded.contains(&r) {
                self.emit_k(t, K("feedback_responded"), Some(1), keys);
            }
        }
        let tickets = std::mem::replace(&mut self.tickets, OMap::new());
        for (_, tk) in tickets.items {
            if let (Some(opened), true) = (tk.opened, tk.waits_for_reply) {
                let k = self.all_only.clone();
                self.emit_k(opened, K("pending_reply"), Some(1), k);
            }
        }
        Derived { facts: self.facts, ignored: self.ignored }
    }
}

pub fn derive(records: &[Rec], ctx: &Ctx) -> Derived {
    let mut rp = Replay::new(ctx);
    for r in records {
        rp.step(r);
    }
    rp.finish()
}

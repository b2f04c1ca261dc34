//! Segment keys of a customer's raw segment values, and bounded labels (reasons, categories).

use crate::blob::Keys;
use std::collections::HashSet;
use std::rc::Rc;

pub struct Segmenter {
    dims: Vec<String>,
    allowed: Vec<HashSet<String>>,
}

impl Segmenter {
    pub fn new(mut dimensions: Vec<(String, Vec<String>)>) -> Self {
        dimensions.sort_by(|a, b| a.0.cmp(&b.0));
        Segmenter {
            dims: dimensions.iter().map(|d| d.0.clone()).collect(),
            allowed: dimensions.into_iter().map(|d| d.1.into_iter().collect()).collect(),
        }
    }
    pub fn keys(&self, raw: &[(String, String)]) -> Keys {
        let mut out = Vec::with_capacity(self.dims.len() + 1);
        out.push("all".to_owned());
        for (dim, allowed) in self.dims.iter().zip(&self.allowed) {
            let value = raw.iter().find(|(k, _)| k == dim).map(|(_, v)| v.as_str());
            let v = match value {
                Some(v) if allowed.contains(v) => v,
                _ => "other",
            };
            out.push(format!("{dim}:{v}"));
        }
        Rc::new(out)
    }
}

pub fn label<'a>(value: Option<&'a str>, allowed: &HashSet<String>) -> &'a str {
    match value {
        None | Some("") => "unspecified",
        Some(v) if allowed.contains(v) => v,
        _ => "other",
    }
}

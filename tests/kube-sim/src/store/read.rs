//! Reading the store: lists in pages with the real server's continue tokens, where a watch
//! starts, the changes after a watch's cursor, and which of them a watch sees.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::{
    Change, ChangeType, Key, ListOptions, ListPage, Store, WatchStart, storage_of, to_external,
};
use crate::resources::ResourceType;
use crate::status::ApiError;

impl Store {
    /// GET on a collection.
    pub fn list(
        &self,
        r: &'static ResourceType,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListPage, ApiError> {
        let s = self.lock();
        let (list_rv, start) = match &opts.continue_token {
            Some(token) => {
                let (rv, start) = decode_continue(token)?;
                if rv < s.oldest {
                    return Err(ApiError::continue_expired());
                }
                (rv, Some(start))
            }
            None => (s.rv, None),
        };
        let empty = BTreeMap::new();
        let table = s.objects.get(storage_of(r).plural).unwrap_or(&empty);
        let range: Box<dyn Iterator<Item = (&Key, &Arc<Value>)>> = match (&start, ns) {
            (Some(k), _) => Box::new(table.range(k.clone()..).filter(move |(key, _)| *key != k)),
            (None, Some(ns)) => Box::new(table.range((ns.to_owned(), String::new())..)),
            (None, None) => Box::new(table.iter()),
        };
        let mut items = Vec::new();
        let mut last_key = None;
        let mut remaining = 0usize;
        for (key, obj) in range {
            if let Some(ns) = ns
                && key.0 != ns
            {
                if key.0.as_str() > ns {
                    break;
                }
                continue;
            }
            if !opts.labels.matches(obj) || !opts.fields.matches(obj) {
                continue;
            }
            if opts.limit.is_some_and(|l| items.len() >= l) {
                remaining += 1;
                continue;
            }
            items.push(Arc::clone(obj));
            last_key = Some(key);
        }
        let continue_token = if remaining > 0 {
            last_key.map(|k| encode_continue(list_rv, k))
        } else {
            None
        };
        Ok(ListPage {
            items: items.iter().map(|o| to_external(r, o)).collect(),
            resource_version: list_rv,
            remaining: continue_token.as_ref().map(|_| remaining),
            continue_token,
        })
    }

    /// Where a watch from `rv` (None: now, with the current objects sent as ADDED) starts.
    pub fn watch_start(
        &self,
        r: &'static ResourceType,
        ns: Option<&str>,
        rv: Option<u64>,
        opts: &ListOptions,
    ) -> Result<WatchStart, ApiError> {
        let s = self.lock();
        match rv {
            None => {
                let empty = BTreeMap::new();
                let initial = s
                    .objects
                    .get(storage_of(r).plural)
                    .unwrap_or(&empty)
                    .iter()
                    .filter(|((n, _), o)| {
                        ns.is_none_or(|ns| ns == n)
                            && opts.labels.matches(o)
                            && opts.fields.matches(o)
                    })
                    .map(|(_, o)| to_external(r, o))
                    .collect();
                Ok(WatchStart {
                    initial,
                    backlog: Vec::new(),
                    cursor: s.rv,
                })
            }
            Some(rv) if rv < s.oldest => Err(ApiError::expired(rv, s.oldest)),
            Some(rv) => {
                let from = s.history.partition_point(|c| c.rv <= rv);
                Ok(WatchStart {
                    initial: Vec::new(),
                    backlog: s.history.range(from..).cloned().collect(),
                    cursor: s.rv.max(rv),
                })
            }
        }
    }

    /// The changes after `cursor`, or None when the cursor fell out of the history window
    /// (the watch must end: its client resumes and gets 410 if it is really too old).
    pub fn changes_after(&self, cursor: u64) -> Option<(Vec<Arc<Change>>, u64)> {
        let s = self.lock();
        if cursor < s.oldest {
            return None;
        }
        let from = s.history.partition_point(|c| c.rv <= cursor);
        Some((s.history.range(from..).cloned().collect(), s.rv))
    }
}

/// The real server's continue token: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":KEY}`.
fn encode_continue(rv: u64, key: &Key) -> String {
    let start = if key.0.is_empty() {
        format!("{}\u{0}", key.1)
    } else {
        format!("{}/{}\u{0}", key.0, key.1)
    };
    B64.encode(json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string())
}

fn decode_continue(token: &str) -> Result<(u64, Key), ApiError> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let raw = B64.decode(token).map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    let start = v["start"]
        .as_str()
        .ok_or_else(bad)?
        .trim_end_matches('\u{0}');
    let key = match start.split_once('/') {
        Some((ns, name)) => (ns.to_owned(), name.to_owned()),
        None => (String::new(), start.to_owned()),
    };
    Ok((rv, key))
}

/// Whether a change is visible to a watch on `r` in `ns` with `opts`, and as which type.
pub fn visible(
    change: &Change,
    r: &'static ResourceType,
    ns: Option<&str>,
    opts: &ListOptions,
) -> Option<ChangeType> {
    if change.storage != storage_of(r).plural || ns.is_some_and(|n| n != change.namespace) {
        return None;
    }
    let sel = |o: &Value| opts.labels.matches(o) && opts.fields.matches(o);
    let now = sel(&change.object);
    let before = change.previous.as_deref().is_some_and(sel);
    match change.kind {
        ChangeType::Added => now.then_some(ChangeType::Added),
        ChangeType::Deleted => (now || before).then_some(ChangeType::Deleted),
        ChangeType::Modified => match (before, now) {
            (true, true) => Some(ChangeType::Modified),
            (false, true) => Some(ChangeType::Added),
            (true, false) => Some(ChangeType::Deleted),
            (false, false) => None,
        },
    }
}

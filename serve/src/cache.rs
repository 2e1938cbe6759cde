//! A bounded cache of answers with an expiry each, keyed by the SHA-256 of a secret (raw tokens
//! are never kept). Past its bound the oldest entry goes first.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

pub struct TtlCache<V> {
    /// Key → (expires at, insertion number, answer).
    entries: HashMap<String, (Instant, u64, V)>,
    /// Keys in insertion order with their insertion number; an entry re-inserted since is
    /// skipped when its older position comes up.
    order: VecDeque<(String, u64)>,
    inserted: u64,
    max: usize,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(max: usize) -> TtlCache<V> {
        TtlCache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            inserted: 0,
            max: max.max(1),
        }
    }

    /// The key a secret (and what it is asked about) is filed under.
    pub fn key(secret: &str, about: &str) -> String {
        mirrorscope_core::hash::sha256_hex(format!("{secret}\n{about}").as_bytes())
    }

    pub fn get(&self, key: &str, now: Instant) -> Option<V> {
        let (expires, _, v) = self.entries.get(key)?;
        (now < *expires).then(|| v.clone())
    }

    pub fn insert(&mut self, key: String, expires: Instant, value: V) {
        self.inserted += 1;
        let n = self.inserted;
        self.entries.insert(key.clone(), (expires, n, value));
        self.order.push_back((key, n));
        while self.entries.len() > self.max {
            let Some((k, at)) = self.order.pop_front() else {
                break;
            };
            if self.entries.get(&k).is_some_and(|(_, i, _)| *i == at) {
                self.entries.remove(&k);
            }
        }
        // Re-inserted keys leave stale positions behind; sweep them before they outgrow the bound.
        if self.order.len() > 2 * self.max {
            let entries = &self.entries;
            self.order
                .retain(|(k, at)| entries.get(k).is_some_and(|(_, i, _)| i == at));
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Positions kept for eviction (bounded to twice the entries' bound).
    pub fn order_len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bounded_hashed_and_expiring() {
        let mut c = TtlCache::new(3);
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(60);
        for i in 0..5 {
            c.insert(TtlCache::<u32>::key(&format!("tok{i}"), ""), later, i);
        }
        assert_eq!(c.len(), 3);
        assert!(c.get(&TtlCache::<u32>::key("tok0", ""), t0).is_none());
        assert_eq!(c.get(&TtlCache::<u32>::key("tok4", ""), t0), Some(4));
        assert!(c.entries.keys().all(|k| !k.contains("tok")));
        for _ in 0..10 {
            c.insert(TtlCache::<u32>::key("tok4", ""), later, 4);
        }
        assert_eq!(c.len(), 3);
        assert!(c.order_len() <= 6);
        assert!(c.get(&TtlCache::<u32>::key("tok4", ""), later).is_none());
        assert_ne!(
            TtlCache::<u32>::key("t", "a"),
            TtlCache::<u32>::key("t", "b")
        );
    }
}

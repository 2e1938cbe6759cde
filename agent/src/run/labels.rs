//! Bounds on metric label values: registry hosts come from the journal (what pods asked for), so
//! a node pulling from many registries must not grow the agent's counters without end. The
//! first [`MAX_VALUES`] distinct values keep their own series; later ones are counted under
//! [`OTHER`].

use std::collections::HashSet;

pub const MAX_VALUES: usize = 200;
pub const OTHER: &str = "other";

#[derive(Debug)]
pub struct BoundedLabel {
    seen: HashSet<String>,
    max: usize,
}

impl BoundedLabel {
    pub fn new(max: usize) -> Self {
        BoundedLabel {
            seen: HashSet::new(),
            max,
        }
    }

    /// The label value to use for `value`, and whether it was folded into [`OTHER`].
    pub fn admit(&mut self, value: String) -> (String, bool) {
        if self.seen.contains(&value) {
            return (value, false);
        }
        if self.seen.len() >= self.max {
            return (OTHER.to_owned(), true);
        }
        self.seen.insert(value.clone());
        (value, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_past_the_bound_fold_into_other_and_known_ones_stay() {
        let mut b = BoundedLabel::new(2);
        assert_eq!(b.admit("a".into()), ("a".into(), false));
        assert_eq!(b.admit("b".into()), ("b".into(), false));
        assert_eq!(b.admit("c".into()), (OTHER.into(), true));
        assert_eq!(b.admit("a".into()), ("a".into(), false));
    }
}

//! runtime-utils `topoGraph`: Kahn's algorithm with lexicographic (byte-order) tie-breaking and
//! deterministic loop breaking, as used to merge the mirror lists of one source.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

#[derive(Default)]
pub(crate) struct TopoGraph {
    /// Node names; index = node id. `BTreeMap` gives the byte-order sort for free.
    ids: BTreeMap<String, usize>,
    names: Vec<String>,
    ins: Vec<BTreeSet<usize>>,
    outs: Vec<BTreeSet<usize>>,
}

impl TopoGraph {
    fn node(&mut self, name: &str) -> usize {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len();
        self.ids.insert(name.to_string(), id);
        self.names.push(name.to_string());
        self.ins.push(BTreeSet::new());
        self.outs.push(BTreeSet::new());
        id
    }

    /// Adds the directed edge `from → to` (redundant edges are ignored).
    pub(crate) fn add_edge(&mut self, from: &str, to: &str) {
        let f = self.node(from);
        let t = self.node(to);
        self.outs[f].insert(t);
        self.ins[t].insert(f);
    }

    /// The nodes in an order that respects the edges where possible (`topoGraph.Sorted`).
    pub(crate) fn sorted(mut self) -> Vec<String> {
        let all: Vec<usize> = self.ids.values().copied().collect();
        let mut used = vec![false; self.names.len()];
        let mut queue: VecDeque<usize> = all
            .iter()
            .copied()
            .filter(|&n| self.ins[n].is_empty())
            .collect();
        let mut res = Vec::with_capacity(all.len());
        let mut all_index = 0;
        while !queue.is_empty() || all_index < all.len() {
            let node = if let Some(n) = queue.pop_front() {
                n
            } else {
                let n = all[all_index];
                all_index += 1;
                if used[n] {
                    continue;
                }
                n
            };
            if used[node] {
                // Cannot happen (Go returns an internal error); stay total.
                continue;
            }
            used[node] = true;
            res.push(self.names[node].clone());
            let mut next: Vec<usize> = Vec::new();
            let outs: Vec<usize> = self.outs[node].iter().copied().collect();
            for out in outs {
                self.ins[out].remove(&node);
                if self.ins[out].is_empty() && !used[out] {
                    next.push(out);
                }
            }
            next.sort_by(|a, b| self.names[*a].cmp(&self.names[*b]));
            queue.extend(next);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merge(lists: &[&[&str]], source: &str) -> Vec<String> {
        let mut g = TopoGraph::default();
        for l in lists {
            for w in l.windows(2) {
                g.add_edge(w[0], w[1]);
            }
            if !l.contains(&source) {
                g.add_edge(l[l.len() - 1], source);
            }
        }
        let mut s = g.sorted();
        if s.last().map(String::as_str) == Some(source) {
            s.pop();
        }
        s
    }

    #[test]
    fn merges_like_runtime_utils() {
        assert_eq!(merge(&[&["b", "c"], &["a", "b"]], "src"), ["a", "b", "c"]);
        assert_eq!(merge(&[&["zz", "yy"], &["aa"]], "src"), ["aa", "zz", "yy"]);
        assert_eq!(
            merge(&[&["zeta", "alpha"], &["alpha", "zeta"]], "x"),
            ["alpha", "zeta"]
        );
        assert_eq!(merge(&[&["m1", "y", "m2"]], "y"), ["m1", "y", "m2"]);
        assert_eq!(merge(&[&["a", "a", "b"]], "s"), ["a", "b"]);
    }
}

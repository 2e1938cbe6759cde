//! The decoded document: what BurntSushi/toml hands to its reflection-based decoder.

use std::collections::HashMap;

/// One value. Arrays of tables (`[[x]]`) stay apart from arrays (`x = [...]`): their Go types
/// differ, and type errors name the Go type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Datetime,
    Array(Vec<Node>),
    Table(Table),
    Tables(Vec<Table>),
}

impl Node {
    /// Go's `%T` of the value BurntSushi/toml decodes this into; from 1.4 on, `interface {}` is
    /// printed as `any`.
    pub(crate) fn go_type(&self, any: bool) -> &'static str {
        if any {
            return match self {
                Node::Array(_) => "[]any",
                Node::Table(_) => "map[string]any",
                Node::Tables(_) => "[]map[string]any",
                other => other.go_type(false),
            };
        }
        match self {
            Node::Str(_) => "string",
            Node::Int(_) => "int64",
            Node::Float(_) => "float64",
            Node::Bool(_) => "bool",
            Node::Datetime => "time.Time",
            Node::Array(_) => "[]interface {}",
            Node::Table(_) => "map[string]interface {}",
            Node::Tables(_) => "[]map[string]interface {}",
        }
    }
}

/// A table, keys in the order they were first set. Most tables hold a few keys (a
/// `[[registry]]` has two or three), so entries are searched in place; a hash index is built
/// only for big ones (`[aliases]` may hold thousands), which keeps a 100,000-entry file's tree
/// small without making big tables quadratic.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Table {
    entries: Vec<(String, Node)>,
    // Boxed: an empty map with its hasher state is 48 bytes in every table (and every `Node`
    // is as big as a table), while almost no table ever gets an index.
    #[allow(clippy::box_collection)]
    index: Option<Box<HashMap<String, usize>>>,
}

/// From this many keys on, a table keeps a hash index.
const INDEX_FROM: usize = 16;

impl Table {
    fn position(&self, k: &str) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(k).copied(),
            None => self.entries.iter().position(|(key, _)| key == k),
        }
    }

    pub(crate) fn get_mut(&mut self, k: &str) -> Option<&mut Node> {
        let i = self.position(k)?;
        self.entries.get_mut(i).map(|(_, v)| v)
    }

    pub(crate) fn contains(&self, k: &str) -> bool {
        self.position(k).is_some()
    }

    /// Sets `k`; a key set again keeps its first place.
    pub(crate) fn insert(&mut self, k: String, v: Node) {
        if let Some(slot) = self.get_mut(&k) {
            *slot = v;
            return;
        }
        if let Some(index) = &mut self.index {
            index.insert(k.clone(), self.entries.len());
        }
        self.entries.push((k, v));
        if self.index.is_none() && self.entries.len() >= INDEX_FROM {
            let index = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, (key, _))| (key.clone(), i))
                .collect();
            self.index = Some(Box::new(index));
        }
    }

    /// Entries in first-set order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_first_place_below_and_above_the_index_bound() {
        for n in [3, INDEX_FROM - 1, INDEX_FROM, 3 * INDEX_FROM] {
            let mut t = Table::default();
            for i in 0..n {
                t.insert(format!("k{i}"), Node::Int(i as i64));
            }
            t.insert("k1".to_owned(), Node::Bool(true));
            t.insert("new".to_owned(), Node::Int(-1));
            let keys: Vec<&str> = t.iter().map(|(k, _)| k).collect();
            assert_eq!(keys.len(), n + 1, "{n}");
            assert_eq!((keys[1], keys[n]), ("k1", "new"), "{n}");
            assert_eq!(t.get_mut("k1"), Some(&mut Node::Bool(true)), "{n}");
            assert!(
                t.contains(&format!("k{}", n - 1)) && !t.contains("nope"),
                "{n}"
            );
        }
    }
}

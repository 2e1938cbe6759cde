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

/// A table, keys in the order they were first set.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Table {
    keys: Vec<String>,
    map: HashMap<String, Node>,
}

impl Table {
    pub(crate) fn get_mut(&mut self, k: &str) -> Option<&mut Node> {
        self.map.get_mut(k)
    }

    pub(crate) fn contains(&self, k: &str) -> bool {
        self.map.contains_key(k)
    }

    pub(crate) fn insert(&mut self, k: String, v: Node) {
        if !self.map.contains_key(&k) {
            self.keys.push(k.clone());
        }
        self.map.insert(k, v);
    }

    /// Entries in first-set order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.keys
            .iter()
            .filter_map(|k| self.map.get(k).map(|v| (k.as_str(), v)))
    }
}

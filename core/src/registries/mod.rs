//! registries.conf engine.

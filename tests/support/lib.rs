//! Support code for the end-to-end tests: real processes on loopback.

pub mod collector;

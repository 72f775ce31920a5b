//! Integration tests of the configuration: loading, overrides, validation, and the property
//! and fuzz tests of the file and `TOKENFLOW_*` parsers (docs/testing.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod config;
mod fuzz;

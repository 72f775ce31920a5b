//! Integration tests of the core: flow parsing and validation, and the property and fuzz tests
//! of every parser that reads outside input (docs/testing.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod flows;
mod fuzz;

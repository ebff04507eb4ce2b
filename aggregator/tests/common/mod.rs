//! Helpers shared by the aggregator's integration tests.

#![allow(dead_code)]

pub mod shape_checker;
pub mod stdin;

//! device tests.
use crate::harness::*;

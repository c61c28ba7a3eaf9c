//! lifecycle tests.
use crate::harness::*;

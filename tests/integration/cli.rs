//! cli tests.
use crate::harness::*;

//! faults tests.
use crate::harness::*;

//! management tests.
use crate::harness::*;

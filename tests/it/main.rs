//! One integration-test binary (one link, shared build) with a module per area.

mod common;

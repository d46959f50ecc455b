//! A local AWS sandbox for tests and the demo.

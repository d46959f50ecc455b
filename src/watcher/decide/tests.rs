//! Tables for `judge`: plain numbers in, decisions out.

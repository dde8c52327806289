//! The client session machine (being written).

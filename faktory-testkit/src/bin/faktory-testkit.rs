//! Serves the test server on a port (placeholder until the network layer lands).
fn main() {}

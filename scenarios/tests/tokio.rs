//! Every scenario on faktory-tokio, each on a current-thread tokio runtime of its own (what
//! `#[tokio::test]` gives).

faktory_scenarios::scenarios!(faktory_scenarios::Tokio);

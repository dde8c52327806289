//! Every scenario on faktory-async-std under `async_std::task::block_on`; clients and workers use
//! the crate's default spawner (async-std's executor).

faktory_scenarios::scenarios!(faktory_scenarios::AsyncStd);

//! Every scenario on faktory-async-std under `smol::block_on`; clients and workers spawn on smol's
//! executor.

faktory_scenarios::scenarios!(faktory_scenarios::Smol);

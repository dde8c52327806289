//! The per-runtime glue: how to block on, spawn and sleep; how to build a client and a worker
//! from a spec; the harness traits for each adapter's types. Nothing else in the crate names a
//! runtime or an adapter crate.
//!
//! - [`client_api!`] implements [`ClientApi`](crate::ClientApi) for the async and the blocking
//!   `Client` (they share their request methods).
//! - `asynk`: the glue of every async runtime, written once over `faktory_async::Runtime`
//!   (faktory-tokio and faktory-async-std are that crate's types on a runtime).
//! - `tokio`, `futures_io` (smol and async-std) and `blocking` hold what differs.

pub(crate) mod asynk;
pub(crate) mod blocking;
pub(crate) mod futures_io;
pub(crate) mod tokio;

/// Implements `ClientApi` for an adapter's `Client`: `client_api!(faktory_tokio::Client; .await)`
/// for the async ones, `client_api!(faktory_blocking::Client;)` for the blocking one (whose call
/// then happens when the future is polled).
macro_rules! client_api {
    ($client:ty; $($await:tt)*) => {
        $crate::rt::client_api!(generic [] $client; $($await)*);
    };
    (generic [$($generics:tt)*] $client:ty; $($await:tt)*) => {
        impl<$($generics)*> $crate::harness::ClientApi for $client {
            fn push(
                &self,
                job: ::faktory_proto::Job,
            ) -> impl ::std::future::Future<Output = Result<String, ::faktory_proto::api::Error>> + Send {
                async move { <$client>::push(self, job) $($await)* }
            }

            fn push_bulk(
                &self,
                jobs: Vec<::faktory_proto::Job>,
            ) -> impl ::std::future::Future<
                Output = Result<::std::collections::BTreeMap<String, String>, ::faktory_proto::api::Error>,
            > + Send {
                async move { <$client>::push_bulk(self, jobs) $($await)* }
            }

            fn info(
                &self,
            ) -> impl ::std::future::Future<
                Output = Result<::faktory_proto::info::Info, ::faktory_proto::api::Error>,
            > + Send {
                async move { <$client>::info(self) $($await)* }
            }

            fn queue_pause(
                &self,
                queues: &[&str],
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::api::Error>> + Send {
                async move { <$client>::queue_pause(self, queues) $($await)* }
            }

            fn queue_resume(
                &self,
                queues: &[&str],
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::api::Error>> + Send {
                async move { <$client>::queue_resume(self, queues) $($await)* }
            }

            fn queue_remove(
                &self,
                queues: &[&str],
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::api::Error>> + Send {
                async move { <$client>::queue_remove(self, queues) $($await)* }
            }

            fn queue_latency(
                &self,
                queues: &[&str],
            ) -> impl ::std::future::Future<
                Output = Result<::faktory_proto::info::QueueLatency, ::faktory_proto::api::Error>,
            > + Send {
                async move { <$client>::queue_latency(self, queues) $($await)* }
            }

            fn mutate_set(
                &self,
                op: ::faktory_proto::command::MutateOp,
                target: ::faktory_proto::command::MutateTarget,
                filter: Option<::faktory_proto::command::MutateFilter>,
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::api::Error>> + Send {
                async move { <$client>::mutate_set(self, op, target, filter) $($await)* }
            }

            fn fetch(
                &self,
                queues: &[&str],
            ) -> impl ::std::future::Future<
                Output = Result<Option<::faktory_proto::Job>, ::faktory_proto::api::Error>,
            > + Send {
                async move { <$client>::fetch(self, queues) $($await)* }
            }

            fn ack(
                &self,
                jid: &str,
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::api::Error>> + Send {
                async move { <$client>::ack(self, jid) $($await)* }
            }

            fn fail(
                &self,
                fail: ::faktory_proto::command::Fail,
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::api::Error>> + Send {
                async move { <$client>::fail(self, fail) $($await)* }
            }

            fn beat(
                &self,
                rss_kb: Option<u64>,
                current_state: Option<::faktory_proto::command::WorkerState>,
            ) -> impl ::std::future::Future<
                Output = Result<Option<::faktory_proto::command::WorkerState>, ::faktory_proto::api::Error>,
            > + Send {
                async move { <$client>::beat(self, rss_kb, current_state) $($await)* }
            }

            fn close(
                &self,
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::api::Error>> + Send {
                async move { <$client>::close(self) $($await)* }
            }
        }
    };
}
pub(crate) use client_api;

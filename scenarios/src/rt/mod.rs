//! The per-runtime glue: how to block on, spawn and sleep; how to build a client and a worker
//! from a spec; the harness traits for each adapter's types. Nothing else in the crate names a
//! runtime or an adapter crate.
//!
//! - [`client_api!`] implements [`ClientApi`](crate::ClientApi) for the three adapters' `Client`s
//!   (they share their request methods).
//! - [`async_adapter!`] is the glue both async adapters (faktory-tokio, faktory-async-std) share:
//!   they have the same builder, handler and token APIs.
//! - `tokio`, `futures_io` (smol and async-std) and `blocking` hold what differs.

pub(crate) mod blocking;
pub(crate) mod futures_io;
pub(crate) mod tokio;

/// Implements `ClientApi` for an adapter's `Client`: `client_api!(faktory_tokio::Client; .await)`
/// for the async ones, `client_api!(faktory_blocking::Client;)` for the blocking one (whose call
/// then happens when the future is polled).
macro_rules! client_api {
    ($client:ty; $($await:tt)*) => {
        impl $crate::harness::ClientApi for $client {
            fn push(
                &self,
                job: ::faktory_proto::Job,
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::adapter::Error>> + Send {
                async move { <$client>::push(self, job) $($await)* }
            }

            fn push_bulk(
                &self,
                jobs: Vec<::faktory_proto::Job>,
            ) -> impl ::std::future::Future<
                Output = Result<::std::collections::BTreeMap<String, String>, ::faktory_proto::adapter::Error>,
            > + Send {
                async move { <$client>::push_bulk(self, jobs) $($await)* }
            }

            fn info(
                &self,
            ) -> impl ::std::future::Future<
                Output = Result<::faktory_proto::info::Info, ::faktory_proto::adapter::Error>,
            > + Send {
                async move { <$client>::info(self) $($await)* }
            }

            fn queue_pause(
                &self,
                queues: &[&str],
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::adapter::Error>> + Send {
                async move { <$client>::queue_pause(self, queues) $($await)* }
            }

            fn queue_resume(
                &self,
                queues: &[&str],
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::adapter::Error>> + Send {
                async move { <$client>::queue_resume(self, queues) $($await)* }
            }

            fn queue_remove(
                &self,
                queues: &[&str],
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::adapter::Error>> + Send {
                async move { <$client>::queue_remove(self, queues) $($await)* }
            }

            fn queue_latency(
                &self,
                queues: &[&str],
            ) -> impl ::std::future::Future<
                Output = Result<::faktory_proto::info::QueueLatency, ::faktory_proto::adapter::Error>,
            > + Send {
                async move { <$client>::queue_latency(self, queues) $($await)* }
            }

            fn mutate_set(
                &self,
                op: ::faktory_proto::command::MutateOp,
                target: ::faktory_proto::command::MutateTarget,
                filter: Option<::faktory_proto::command::MutateFilter>,
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::adapter::Error>> + Send {
                async move { <$client>::mutate_set(self, op, target, filter) $($await)* }
            }

            fn fetch(
                &self,
                queues: &[&str],
            ) -> impl ::std::future::Future<
                Output = Result<Option<::faktory_proto::Job>, ::faktory_proto::adapter::Error>,
            > + Send {
                async move { <$client>::fetch(self, queues) $($await)* }
            }

            fn ack(
                &self,
                jid: &str,
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::adapter::Error>> + Send {
                async move { <$client>::ack(self, jid) $($await)* }
            }

            fn fail(
                &self,
                fail: ::faktory_proto::command::Fail,
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::adapter::Error>> + Send {
                async move { <$client>::fail(self, fail) $($await)* }
            }

            fn beat(
                &self,
                rss_kb: Option<u64>,
                current_state: Option<::faktory_proto::command::WorkerState>,
            ) -> impl ::std::future::Future<
                Output = Result<Option<::faktory_proto::command::WorkerState>, ::faktory_proto::adapter::Error>,
            > + Send {
                async move { <$client>::beat(self, rss_kb, current_state) $($await)* }
            }

            fn close(
                &self,
            ) -> impl ::std::future::Future<Output = Result<(), ::faktory_proto::adapter::Error>> + Send {
                async move { <$client>::close(self) $($await)* }
            }
        }
    };
}
pub(crate) use client_api;

/// The glue both async adapters share:
/// `async_adapter!(faktory_tokio; Client Worker CancellationToken JobContext)` implements the
/// harness traits for the listed types of the crate (list a type in one invocation only if both
/// crates re-export the same type), and generates
/// - `client_builder(&ClientSpec)`: a `ClientBuilder` with the spec's URL, wid, request timeout and
///   TLS roots (the caller adds runtime settings, then connects or hands over the stream);
/// - `worker_builder::<H>(WorkerSpec)`: a `WorkerBuilder` with the spec's settings, its handlers
///   registered (`register` / `register_with_context` with async steps on `H`'s timer,
///   `register_blocking` with blocking steps), and its shutdown signal wired to the returned token.
macro_rules! async_adapter {
    (@impl $krate:ident Client) => {
        $crate::rt::client_api!($krate::Client; .await);
    };
    (@impl $krate:ident Worker) => {
        impl $crate::harness::WorkerApi for $krate::Worker {
            fn run(
                self,
            ) -> impl ::std::future::Future<Output = ::faktory_proto::worker::StopReport> + Send + 'static
            {
                $krate::Worker::run(self)
            }
        }
    };
    (@impl $krate:ident CancellationToken) => {
        impl $crate::harness::Stop for $krate::CancellationToken {
            fn stop(&self) {
                self.cancel();
            }

            fn is_stopped(&self) -> bool {
                self.is_cancelled()
            }
        }
    };
    (@impl $krate:ident JobContext) => {
        impl $crate::harness::JobCtx for $krate::JobContext {
            fn jid(&self) -> &str {
                $krate::JobContext::jid(self)
            }

            fn jobtype(&self) -> &str {
                $krate::JobContext::jobtype(self)
            }

            fn is_cancelled(&self) -> bool {
                $krate::JobContext::is_cancelled(self)
            }

            fn cancelled(&self) -> impl ::std::future::Future<Output = ()> + Send {
                self.cancellation().cancelled()
            }
        }
    };
    ($krate:ident; $($ty:ident)*) => {
        $($crate::rt::async_adapter!(@impl $krate $ty);)*

        pub(crate) fn client_builder(
            spec: &$crate::harness::ClientSpec,
        ) -> Result<$krate::ClientBuilder, ::faktory_proto::adapter::Error> {
            let mut builder = $krate::Client::builder();
            if let Some(url) = &spec.url {
                builder = builder.url(url)?;
            }
            if let Some(wid) = &spec.wid {
                builder = builder.wid(wid);
            }
            if let Some(timeout) = spec.request_timeout {
                builder = builder.request_timeout(timeout);
            }
            if let Some(cert) = &spec.tls_root {
                let mut roots = $krate::rustls::RootCertStore::empty();
                roots.add(cert.clone().into()).expect("a valid certificate");
                builder = builder.tls($krate::TlsConfig::RootStore(roots));
            }
            Ok(builder)
        }

        pub(crate) fn worker_builder<H: $crate::harness::Harness>(
            spec: $crate::harness::WorkerSpec,
        ) -> Result<($krate::WorkerBuilder, $krate::CancellationToken), ::faktory_proto::adapter::Error>
        {
            use $crate::harness::{Registration, run_steps_async, run_steps_blocking};
            use $krate::{Job, JobContext};

            let stop = $krate::CancellationToken::new();
            let mut builder = $krate::Worker::builder()
                .url(&spec.url)?
                .queues(spec.queues)
                .heartbeat_interval(spec.heartbeat)
                .grace_period(spec.grace_period);
            if let Some(wid) = spec.wid {
                builder = builder.wid(wid);
            }
            if let Some(n) = spec.concurrency {
                builder = builder.concurrency(n);
            }
            if let Some(cert) = spec.tls_root {
                let mut roots = $krate::rustls::RootCertStore::empty();
                roots.add(cert.into()).expect("a valid certificate");
                builder = builder.tls($krate::TlsConfig::RootStore(roots));
            }
            for (jobtype, handler) in spec.handlers {
                let steps: ::std::sync::Arc<[$crate::harness::Step]> = handler.steps().into();
                let stop = stop.clone();
                builder = match handler.registration() {
                    Registration::Plain => builder.register(jobtype, move |job: Job| {
                        let (steps, stop) = (::std::sync::Arc::clone(&steps), stop.clone());
                        async move {
                            run_steps_async::<H, JobContext>(&steps, &job, None, &stop).await
                        }
                    }),
                    Registration::WithContext => {
                        builder.register_with_context(jobtype, move |job: Job, ctx: JobContext| {
                            let (steps, stop) = (::std::sync::Arc::clone(&steps), stop.clone());
                            async move {
                                run_steps_async::<H, JobContext>(&steps, &job, Some(&ctx), &stop)
                                    .await
                            }
                        })
                    }
                    Registration::Blocking => {
                        builder.register_blocking(jobtype, move |job: Job, ctx: JobContext| {
                            run_steps_blocking(&steps, &job, Some(&ctx), &stop)
                        })
                    }
                };
            }
            // The async APIs have no worker-owned handle: `WorkerHandle` is the signal too.
            if spec.shutdown != $crate::harness::Shutdown::ServerOnly {
                builder = builder.shutdown_signal(stop.clone().cancelled_owned());
            }
            Ok((builder, stop))
        }
    };
}
pub(crate) use async_adapter;

//! # faktory-scenarios
//!
//! The adapter scenario list, written once and run under every runtime: faktory-tokio on tokio,
//! faktory-async-std on smol and on async-std, and faktory-blocking on threads. `tests/` has one
//! short file per runtime; each instantiates the whole list with [`scenarios!`], which generates one
//! `#[test]` per scenario, so `cargo test -p faktory-scenarios --test smol` lists and reports every
//! scenario by name.
//!
//! Each scenario runs against the in-memory `faktory-testkit` (on a tokio runtime of its own, on
//! its own threads, whatever the runtime under test), or against the real Faktory named by
//! `FAKTORY_URL` when that is set: scenarios that need the testkit (fault injection, operator
//! actions) then print `SKIPPED <name>` and return. Scenarios use unique queue names and never
//! assume an empty server.
//!
//! ## The harness
//!
//! A scenario is an `async fn` generic over a [`Harness`]: the runtime's `block_on`, `spawn` and
//! `sleep`, and the adapter's API: [`Harness::connect`] / [`Harness::connect_to`] give the
//! adapter's own `Client` (its requests through [`ClientApi`]), [`Harness::worker`] builds the
//! adapter's own `Worker` (run through [`WorkerApi`]) with what stops it ([`Stop`]: a
//! `CancellationToken` or a `ShutdownHandle`). Clients and workers are described by
//! [`ClientSpec`] and [`WorkerSpec`]; a worker's handlers by a [`Handler`], a list of [`Step`]s
//! that each harness runs natively (async handlers awaiting the runtime's timer and the job's
//! token on the async runtimes, plain functions on blocking, `register_blocking` where asked).
//!
//! The async harnesses run the scenario on their runtime (a current-thread tokio runtime per test
//! like `#[tokio::test]`, `smol::block_on`, `async_std::task::block_on`) and await the adapter's
//! futures. The blocking harness drives the scenario with a plain `block_on` on the test thread:
//! its futures make the blocking calls when polled, and [`Harness::spawn`] runs a future on a thread
//! of its own (a worker's `run`, concurrent callers). Scenarios never name a runtime or an adapter
//! crate; the glue lives in `src/rt/` (a module per adapter, and one macro both async adapters
//! share).
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout
)]

mod harness;
mod rt;
mod scenarios;
pub mod support;

pub use harness::{
    BoxFuture, ClientApi, ClientLayer, ClientSpec, Counter, Greeting, Handler, Harness, Inner,
    JobCtx, Latch, Layer, Log, Outer, Registration, Shutdown, Signup, Step, Stop, Tally, Task,
    UserStream, WorkerApi, WorkerSpec, describe, placeholder_job, run_steps_async,
    run_steps_blocking, typed_steps_async, typed_steps_blocking,
};
pub use rt::blocking::Blocking;
pub use rt::futures_io::{AsyncStd, AsyncStdExecutor, Executor, FuturesIo, Smol, SmolExecutor};
pub use rt::tokio::Tokio;

/// The scenario list, once. `scenarios!(Harness)` generates one `#[test]` per scenario, running it
/// under that harness:
///
/// ```text
/// faktory_scenarios::scenarios!(faktory_scenarios::Smol);
/// ```
///
/// The same list re-exports the scenarios as [`list`]: a scenario function left out of it is
/// unreachable, and the lints (`dead_code`, `unreachable_pub`) say so, so every scenario runs
/// under every runtime.
#[macro_export]
macro_rules! scenarios {
    ($harness:ty) => {
        $crate::scenarios!(@list [tests $harness]);
    };
    (@list $what:tt) => {
        $crate::scenarios!(@expand $what
            // client
            push_and_fetch_every_job_field,
            push_bulk_reports_partial_failures,
            queue_pause_resume_remove_latency,
            mutate_moves_jobs_between_sets,
            consumer_commands_fetch_ack_fail_beat,
            in_flight_call_fails_with_unknown_outcome_then_reconnects,
            client_survives_a_server_restart,
            concurrent_calls_share_one_connection,
            password_server,
            tls_server,
            garbage_server_gives_a_typed_error_not_a_hang,
            a_refused_connect_fails_fast_and_names_its_phase,
            error_messages_name_what_failed_and_where,
            // client handles
            connect_with_stream_close_and_drop,
            client_over_a_user_stream_pipelines_and_cannot_reconnect,
            client_over_a_user_tcp_stream_is_full_duplex,
            close_says_end_and_later_calls_fail,
            dropping_the_last_client_says_end,
            handles_are_shareable_across_threads,
            public_types_are_send_and_sync,
            // worker
            worker_runs_1000_jobs_at_concurrency_20_each_acked_once,
            handler_error_becomes_fail_with_message_and_backtrace,
            handler_errors_get_a_meaningful_errtype,
            handler_panic_becomes_fail,
            blocking_handler_and_unknown_jobtype,
            quiet_from_the_server_stops_fetching,
            terminate_from_the_server_stops_the_worker,
            local_shutdown_lets_a_slow_job_finish_within_the_grace_period,
            local_shutdown_fails_a_job_past_the_grace_period,
            shutdown_before_run_stops_at_once,
            server_dropping_connections_mid_run_loses_no_ack,
            server_restarting_mid_run_loses_no_ack,
            // worker processes
            sigterm_stops_a_busy_worker_process_gracefully,
            a_refused_worker_is_not_clean_and_its_process_exits_non_zero,
            the_worker_example_exits_non_zero_when_refused,
            // middleware, typed handlers, state, follow-up pushes, job options
            worker_middleware_order_modify_short_circuit_retry_discard,
            client_middleware_and_job_defaults_shape_the_pushed_job,
            typed_handlers_get_tuple_and_struct_args,
            jobs_larger_than_a_read_arrive_whole,
            handlers_see_shared_state_and_their_batch,
            ctx_push_sends_a_follow_up_job_that_lands_and_runs,
            push_returns_the_jid,
            relative_scheduling_lands_in_the_scheduled_set,
            enterprise_options_are_in_the_pushed_json,
            run_job_tests_a_handler_without_a_server,
        );
    };
    (@expand [tests $harness:ty] $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                <$harness as $crate::Harness>::block_on($crate::list::$name::<$harness>());
            }
        )*
    };
    (@expand [list] $($name:ident),* $(,)?) => {
        /// Every scenario, each an `async fn` generic over the [`Harness`].
        pub mod list {
            pub use $crate::scenarios::{$($name),*};
        }
    };
}

scenarios!(@list [list]);

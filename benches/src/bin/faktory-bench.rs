//! `faktory-bench`: load, push and worker throughput of the Faktory clients, against `FAKTORY_URL`,
//! the in-process testkit, or a testkit in a child process (`--spawn-testkit`). See
//! `benches/README.md` or `faktory-bench --help`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    faktory_benches::cli::main_with(std::env::args().skip(1))
}

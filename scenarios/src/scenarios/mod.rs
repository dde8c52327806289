//! The scenarios, each an `async fn` generic over the [`Harness`]. They are re-exported one by one
//! from [`crate::list`] by the list in [`crate::scenarios!`]; a scenario missing there is
//! unreachable, which the `dead_code` and `unreachable_pub` lints report.

mod client;
mod features;
mod handles;
mod process;
mod worker;

pub use client::*;
pub use features::*;
pub use handles::*;
pub use process::*;
pub use worker::*;

use crate::harness::{ClientSpec, Harness};
use crate::support::Server;

/// A client of `server` (through `Client::builder()`).
async fn client<H: Harness>(server: &Server) -> H::Client {
    H::connect(ClientSpec::url(server.url()))
        .await
        .expect("client connects")
}

/// A consumer of `server`: a client that says HELLO with `wid`.
async fn consumer<H: Harness>(server: &Server, wid: &str) -> H::Client {
    H::connect(ClientSpec::url(server.url()).wid(wid))
        .await
        .expect("consumer connects")
}

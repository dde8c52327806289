//! Client handles: streams the user opened, `close()`, dropping the last clone, and the handle
//! types' thread-safety.

use std::time::Duration;

use faktory_proto::Job;
use faktory_proto::api::Error;

use crate::harness::{ClientApi, ClientSpec, Harness, UserStream, WorkerApi, WorkerSpec};
use crate::support::{LONG, Server, eventually, timeout, unique_queue};

/// Two clients over streams the user opened (two stream types), `close()` and dropping the last
/// handle both ending the connection with END.
pub async fn connect_with_stream_close_and_drop<H: Harness>() {
    let Some(kit) = Server::kit_only("connect_with_stream_close_and_drop").await else {
        return;
    };
    let queue = unique_queue("stream");
    let a = H::connect(ClientSpec::stream(kit.addr(), UserStream::Tcp))
        .await
        .unwrap();
    let b = H::connect(ClientSpec::stream(kit.addr(), UserStream::Opaque))
        .await
        .unwrap();
    a.push(Job::builder("S").queue(&queue).build().unwrap())
        .await
        .unwrap();
    b.push(Job::builder("S").queue(&queue).build().unwrap())
        .await
        .unwrap();
    assert_eq!(kit.queue(&queue).len(), 2);
    assert_eq!(kit.connection_count(), 2);

    a.close().await.unwrap();
    let err = a.info().await.unwrap_err();
    assert!(matches!(err, Error::Closed), "{err:?}");
    assert!(
        eventually::<H>(Duration::from_secs(5), || kit.connection_count() == 1).await,
        "close() sent END"
    );

    let b2 = b.clone();
    drop(b);
    b2.info().await.expect("a clone keeps the connection");
    drop(b2);
    assert!(
        eventually::<H>(Duration::from_secs(5), || kit.connection_count() == 0).await,
        "dropping the last handle sent END"
    );
}

/// Concurrent calls over a stream the client cannot split are pipelined on it; once the server
/// drops it, calls fail (nothing reopens a user's stream), without hanging.
pub async fn client_over_a_user_stream_pipelines_and_cannot_reconnect<H: Harness>() {
    let Some(kit) =
        Server::kit_only("client_over_a_user_stream_pipelines_and_cannot_reconnect").await
    else {
        return;
    };
    let queue = unique_queue("userstream");
    let c = H::connect(
        ClientSpec::stream(kit.addr(), UserStream::Opaque).request_timeout(Duration::from_secs(5)),
    )
    .await
    .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|t| {
            let (c, q) = (c.clone(), queue.clone());
            H::spawn(async move {
                for i in 0..5 {
                    c.push(Job::builder("U").args((t, i)).queue(&q).build().unwrap())
                        .await?;
                }
                Ok::<(), Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(kit.queue(&queue).len(), 100);
    assert_eq!(
        c.info().await.unwrap().faktory.queues.get(&queue),
        Some(&100)
    );
    assert_eq!(kit.connection_count(), 1, "one connection, pipelined");

    // The server drops it: the next call fails (the blocking client reads a stream it cannot split
    // only while replies are due, so it may see the EOF only with this call), and nothing
    // reconnects a user's stream.
    assert_eq!(kit.drop_all_connections(), 1);
    assert!(eventually::<H>(LONG, || kit.connection_count() == 0).await);
    let c2 = c.clone();
    let err = timeout::<H, _>(Duration::from_secs(10), async move { c2.info().await })
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(
        matches!(err, Error::OutcomeUnknown { .. } | Error::Connection { .. }),
        "{err:?}"
    );
    let err = timeout::<H, _>(Duration::from_secs(10), async move { c.info().await })
        .await
        .expect("no hang")
        .unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err:?}");
}

/// A client over a plain TCP stream the user opened notices the server's close while idle: the
/// next call fails without sending anything.
pub async fn client_over_a_user_tcp_stream_is_full_duplex<H: Harness>() {
    let Some(kit) = Server::kit_only("client_over_a_user_tcp_stream_is_full_duplex").await else {
        return;
    };
    let queue = unique_queue("usertcp");
    let c = H::connect(ClientSpec::stream(kit.addr(), UserStream::Tcp))
        .await
        .unwrap();
    c.push(Job::builder("T").queue(&queue).build().unwrap())
        .await
        .unwrap();
    assert_eq!(kit.queue(&queue).len(), 1);
    // The client reads while idle and sees the server's close: the next call knows the connection
    // is gone and, with no way to reopen it, fails without sending anything.
    assert_eq!(kit.drop_all_connections(), 1);
    assert!(eventually::<H>(LONG, || kit.connection_count() == 0).await);
    let q = queue.clone();
    let err = timeout::<H, _>(Duration::from_secs(10), async move {
        c.push(Job::builder("T").queue(&q).build().unwrap()).await
    })
    .await
    .expect("no hang")
    .unwrap_err();
    assert!(
        matches!(err, Error::Connection { .. } | Error::OutcomeUnknown { .. }),
        "{err:?}"
    );
    assert_eq!(kit.queue(&queue).len(), 1);
}

/// `close()` says END; later calls on it and its clones fail with `Closed`.
pub async fn close_says_end_and_later_calls_fail<H: Harness>() {
    let Some(kit) = Server::kit_only("close_says_end_and_later_calls_fail").await else {
        return;
    };
    let c = H::connect(ClientSpec::url(kit.url())).await.unwrap();
    let other = c.clone();
    c.info().await.unwrap();
    assert_eq!(kit.connection_count(), 1);
    c.close().await.unwrap();
    assert!(eventually::<H>(LONG, || kit.connection_count() == 0).await);
    assert!(matches!(c.info().await, Err(Error::Closed)));
    assert!(
        matches!(other.info().await, Err(Error::Closed)),
        "clones too"
    );
    assert!(matches!(c.close().await, Err(Error::Closed)));
}

/// A clone keeps the connection; dropping the last handle says END and closes it.
pub async fn dropping_the_last_client_says_end<H: Harness>() {
    let Some(kit) = Server::kit_only("dropping_the_last_client_says_end").await else {
        return;
    };
    let c = H::connect(ClientSpec::url(kit.url())).await.unwrap();
    let other = c.clone();
    c.info().await.unwrap();
    drop(c);
    other.info().await.unwrap();
    assert_eq!(kit.connection_count(), 1, "a clone keeps the connection");
    drop(other);
    assert!(
        eventually::<H>(LONG, || kit.connection_count() == 0).await,
        "the connection's task (or thread) said END and closed"
    );
}

/// The handles (client, shutdown, cancellation, job context) are `Clone + Send + Sync`; a worker
/// and an error can move to another thread.
pub async fn handles_are_shareable_across_threads<H: Harness>() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    fn sendable<T: Send + 'static>() {}
    shareable::<H::Client>();
    shareable::<H::Stop>();
    shareable::<H::Token>();
    shareable::<H::JobContext>();
    sendable::<H::Worker>();
    sendable::<Error>();
}

/// `Client` is shared across tasks; `Worker::run` (and so its handlers) runs on multi-threaded
/// executors: its future is `Send`.
pub async fn public_types_are_send_and_sync<H: Harness>() {
    fn send_sync<T: Send + Sync + Clone>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<H::Client>();
    send_sync::<H::Token>();
    let (worker, _stop) = H::worker(WorkerSpec::new("tcp://127.0.0.1:1", "default")).unwrap();
    send(&worker.run());
}

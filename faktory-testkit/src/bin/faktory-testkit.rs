//! `faktory-testkit`: serves the in-memory test server on a port, so any Faktory client in any
//! language can be pointed at it. A test double, not a production server.
//!
//! ```text
//! faktory-testkit [--port 7419] [--password SECRET] [--fetch-timeout-ms 2000]
//!                 [--pace real | --pace PER_COMMAND_US:SHARED_US[:KNEE:CROWD_NS]]
//! ```
//! `--pace` answers at the modelled pace of a real server (see `faktory_testkit::Pace`) instead of
//! at once: for benchmarks.
//! Listens on 127.0.0.1 only, prints the address (`tcp://127.0.0.1:7419`) on stdout, serves until
//! Ctrl-C.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use faktory_testkit::{Pace, TestServer};

const USAGE: &str = "usage: faktory-testkit [--port N (7419; 0 = any free port)] [--password SECRET] \
                     [--fetch-timeout-ms MS (2000)] \
                     [--pace real | --pace PER_COMMAND_US:SHARED_US[:KNEE:CROWD_NS]]\nListens on 127.0.0.1 only. An in-memory test double, \
                     not a production server.";

#[derive(Debug)]
struct Args {
    port: u16,
    password: Option<String>,
    fetch_timeout: Duration,
    pace: Option<Pace>,
}

fn parse_pace(text: &str) -> Result<Pace, String> {
    text.parse::<Pace>().map_err(|e| format!("--pace: {e}"))
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Option<Args>, String> {
    let mut args = Args {
        port: 7419,
        password: None,
        fetch_timeout: Duration::from_secs(2),
        pace: None,
    };
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(v.to_owned())),
            None => (flag.clone(), None),
        };
        if name == "-h" || name == "--help" {
            return Ok(None);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or(format!("{name} needs a value"))
        };
        match name.as_str() {
            "--port" | "-p" => args.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--password" => args.password = Some(value()?),
            "--fetch-timeout-ms" => {
                let ms: u64 = value()?
                    .parse()
                    .map_err(|e| format!("--fetch-timeout-ms: {e}"))?;
                args.fetch_timeout = Duration::from_millis(ms);
            }
            "--pace" => args.pace = Some(parse_pace(&value()?)?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Some(args))
}

fn say(stream: &mut dyn std::io::Write, text: &str) {
    // A closed stdout/stderr must not panic the server.
    let _ = writeln!(stream, "{text}");
    let _ = stream.flush();
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Some(a)) => a,
        Ok(None) => {
            say(&mut std::io::stdout(), USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            say(
                &mut std::io::stderr(),
                &format!("faktory-testkit: {e}\n{USAGE}"),
            );
            return ExitCode::from(2);
        }
    };
    let mut builder = TestServer::builder()
        .bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), args.port))
        .fetch_timeout(args.fetch_timeout);
    if let Some(p) = args.password {
        builder = builder.password(p);
    }
    if let Some(pace) = args.pace {
        builder = builder.pace(pace);
    }
    let server = match builder.start().await {
        Ok(s) => s,
        Err(e) => {
            say(
                &mut std::io::stderr(),
                &format!("faktory-testkit: cannot listen: {e}"),
            );
            return ExitCode::FAILURE;
        }
    };
    say(&mut std::io::stdout(), &server.url());
    say(
        &mut std::io::stderr(),
        "faktory-testkit: in-memory Faktory test double (not a production server); Ctrl-C to stop",
    );
    let _ = tokio::signal::ctrl_c().await;
    drop(server);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Option<Args>, String> {
        parse_args(v.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn arguments() {
        let a = parse(&[]).unwrap().unwrap();
        assert_eq!((a.port, a.password), (7419, None));
        let a = parse(&[
            "--port",
            "0",
            "--password=s3cret",
            "--fetch-timeout-ms",
            "150",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (a.port, a.password.as_deref(), a.fetch_timeout),
            (0, Some("s3cret"), Duration::from_millis(150))
        );
        assert!(parse(&["--help"]).unwrap().is_none());
        assert!(parse(&["--port"]).is_err());
        assert!(parse(&["--port", "x"]).is_err());
        assert!(parse(&["--nope"]).is_err());
        let a = parse(&["--pace", "real"]).unwrap().unwrap();
        assert_eq!(a.pace, Some(Pace::real_server()));
        let a = parse(&["--pace=120:45"]).unwrap().unwrap();
        assert_eq!(
            a.pace,
            Some(Pace::new(
                Duration::from_micros(120),
                Duration::from_micros(45)
            ))
        );
        assert!(parse(&["--pace", "fast"]).is_err());
        assert!(parse(&["--pace", "1:x"]).is_err());
    }
}

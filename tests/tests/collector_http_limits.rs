//! The collector's HTTP server under clients that hold connections open: half-sent requests
//! are closed after the header read timeout, and past the connection cap the oldest idle
//! connection is closed for the new one, so `/healthz` keeps answering.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mirrorscope_e2e::collector::*;

fn half_open(url: &str) -> TcpStream {
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(authority).unwrap();
    // A partial request line, never finished (no token is needed to get this far).
    s.write_all(b"POST /v1/rep").unwrap();
    s
}

/// 300 half-sent requests against a collector allowed 256 open files: before the fix each held
/// a descriptor forever, accept failed with EMFILE and `/healthz` never answered.
#[test]
fn healthz_answers_under_300_half_open_connections() {
    let c = Collector::start_with_nofile(256, &[]);
    let held: Vec<TcpStream> = (0..300).map(|_| half_open(&c.url)).collect();
    let (status, body) = c.get("/healthz");
    assert_eq!(
        status,
        200,
        "healthz: {body:?}\ncollector log:\n{}",
        c.log()
    );
    assert_eq!(body, "ok\n");
    // A report still gets through too.
    let mut n = FakeNode::new("node-a");
    n.push_to(&c.url);
    let metrics = c.get("/metrics").1;
    assert!(
        metrics.contains(
            r#"mirrorscope_errors_total{component="http",error_type="too_many_connections"}"#
        ),
        "{metrics}"
    );
    drop(held);
}

/// A request head that never completes is closed by the collector (it used to wait forever;
/// the test's own read timeout of 60 s only keeps it from hanging).
#[test]
fn a_half_sent_request_is_closed() {
    let c = Collector::start(&[]);
    let mut s = half_open(&c.url);
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut buf = Vec::new();
    let r = s.read_to_end(&mut buf);
    assert!(
        r.is_ok(),
        "the collector kept the half-sent request open: {r:?}"
    );
    let metrics = c.get("/metrics").1;
    assert!(
        metrics
            .contains(r#"mirrorscope_errors_total{component="http",error_type="header_timeout"}"#),
        "{metrics}"
    );
}

/// A report whose body never finishes arriving is answered 408 (it used to keep its connection
/// busy, and so safe from the connection cap, forever).
#[test]
fn a_report_body_that_never_ends_is_answered_408() {
    let c = Collector::start(&[]);
    let authority = c.url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(authority).unwrap();
    s.write_all(
        format!("POST /v1/reports HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 1000\r\n\r\n{{\"version\":")
            .as_bytes(),
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text:?}");
    let metrics = c.get("/metrics").1;
    assert!(
        metrics
            .contains(r#"mirrorscope_errors_total{component="ingest",error_type="body_timeout"}"#),
        "{metrics}"
    );
}

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

/// A chunked report declares no length, so it cannot be refused from its head: the collector
/// stops reading at its body limit and answers 413, and is none the worse for it.
#[test]
fn a_chunked_report_past_the_body_limit_is_answered_413() {
    let c = Collector::start(&[]);
    let authority = c.url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(authority).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.write_all(
        format!("POST /v1/reports HTTP/1.1\r\nHost: {authority}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let chunk = vec![b' '; 1024 * 1024];
    for _ in 0..9 {
        // The collector may answer and close before the last chunks: a failed write is expected.
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .and_then(|_| s.write_all(&chunk))
            .and_then(|_| s.write_all(b"\r\n"))
            .is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 413"), "{text:?}");
    assert!(
        text.contains("report larger than 8388608 bytes"),
        "{text:?}"
    );
    assert_eq!(c.get("/healthz").0, 200);
    let metrics = c.get("/metrics").1;
    assert!(
        metrics.contains(r#"mirrorscope_errors_total{component="ingest",error_type="too_large"}"#),
        "{metrics}"
    );
    // The next report from the same node is filed as usual.
    FakeNode::new("node-a").push_to(&c.url);
}

/// JSON nested 100,000 deep (arrays, objects, and a real report's field) is refused with a 400
/// naming where it went wrong, without exhausting the stack: the typed decoder stops at the
/// first value of the wrong shape, and serde_json's recursion limit bounds everything else.
#[test]
fn deeply_nested_json_is_refused_with_a_clear_error() {
    let c = Collector::start(&[]);
    let depth = 100_000;
    let bodies = [
        ("arrays", "[".repeat(depth)),
        ("objects", r#"{"a":"#.repeat(depth)),
        (
            "a report field",
            format!(
                r#"{{"version":1,"node":"node-a","seq":1,"registries":{}"#,
                r#"{"files":"#.repeat(depth)
            ),
        ),
    ];
    for (what, body) in bodies {
        let (status, answer) = http(&c.url, "POST", "/v1/reports", &[], body.as_bytes());
        assert_eq!(status, 400, "{what}: {answer}");
        assert!(
            answer.contains("invalid NodeReport") && answer.contains("at line 1 column"),
            "{what}: {answer}"
        );
    }
    assert_eq!(c.get("/healthz").0, 200);
    let metrics = c.get("/metrics").1;
    assert!(
        metrics.contains(
            r#"mirrorscope_errors_total{component="ingest",error_type="invalid_report"} 3"#
        ),
        "{metrics}"
    );
    FakeNode::new("node-a").push_to(&c.url);
}

/// 500 connections to the TLS listener held for 30 s, half silent and half stopped inside
/// their ClientHello, against a collector allowed 256 open files: `/healthz` over TLS answers
/// throughout, and by the end every held connection has been closed (evicted past the cap, or
/// timed out by the 10 s handshake bound).
#[test]
fn tls_listener_survives_500_slow_handshakes_held_for_30_s() {
    let dir = TempDir::new("tls-slow");
    let (ca, cert, key) = test_certificates(dir.path());
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, &cert).unwrap();
    std::fs::write(&key_file, &key).unwrap();
    let c = Collector::start_with_nofile(
        256,
        &[
            "--tls-cert-file",
            cert_file.to_str().unwrap(),
            "--tls-key-file",
            key_file.to_str().unwrap(),
        ],
    );
    let authority = c.url.trim_start_matches("https://").trim_end_matches('/');
    let mut held: Vec<TcpStream> = (0..500)
        .map(|i| {
            let mut s = TcpStream::connect(authority).unwrap();
            if i % 2 == 1 {
                // A TLS record header announcing a 512-byte ClientHello, and 4 bytes of it.
                s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc])
                    .unwrap();
            }
            s
        })
        .collect();
    let start = std::time::Instant::now();
    let mut probes = 0;
    while start.elapsed() < Duration::from_secs(30) {
        let answer = https_get(&c.url, "/healthz", &ca, &[]);
        assert_eq!(
            answer.as_ref().map(|(s, b)| (*s, b.as_str())),
            Ok((200, "ok\n")),
            "after {:?} with 500 slow handshakes held\ncollector log:\n{}",
            start.elapsed(),
            c.log()
        );
        probes += 1;
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(probes >= 10, "{probes} probes in 30 s");
    for (i, s) in held.iter_mut().enumerate() {
        // Closed already: the read ends at once (EOF or reset); a guard keeps a failure short.
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 16];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("held connection {i} still open after 30 s: {other:?}"),
        }
    }
    let log = c.log();
    assert!(log.contains("TLS handshake timed out"), "{log}");
    assert!(log.contains("closed the oldest idle one"), "{log}");
}

//! TokenReview answers are cached by a hash of the token, bad ones too (briefly): a repeated
//! wrong token costs the API server one review, not one per push. The bearer scheme is
//! case-insensitive (RFC 7235).

use mirrorscope_e2e::collector::*;
use serde_json::json;

const AGENT_SA: &str = "system:serviceaccount:mirrorscope:mirrorscope-agent";

fn api() -> MockApi {
    let api = MockApi::start();
    api.set("/api/v1/nodes", list("Node", "v1", vec![]));
    api.state.lock().unwrap().reviews.insert(
        "tok-w1".into(),
        json!({"authenticated": true, "user": {"username": AGENT_SA,
               "extra": {"authentication.kubernetes.io/node-name": ["w1"]}}}),
    );
    api
}

fn reviews(api: &MockApi) -> usize {
    api.state
        .lock()
        .unwrap()
        .seen
        .iter()
        .filter(|s| s.ends_with("/tokenreviews"))
        .count()
}

#[test]
fn a_repeated_wrong_token_costs_one_token_review() {
    let api = api();
    let c = Collector::start(&["--in-cluster", "--kube-api", &api.url]);
    let mut n = FakeNode::new("w1");
    n.token = Some("wrong-token".into());
    for _ in 0..5 {
        let r = n.report();
        let (status, body) = push(&c.url, n.token.as_deref(), &r);
        assert_eq!(status, 401, "{body}");
    }
    assert_eq!(
        reviews(&api),
        1,
        "TokenReviews for one wrong token pushed 5 times"
    );
    assert!(!c.log().contains("wrong-token"), "{}", c.log());
}

#[test]
fn lowercase_bearer_is_accepted() {
    let api = api();
    let c = Collector::start(&["--in-cluster", "--kube-api", &api.url]);
    let mut n = FakeNode::new("w1");
    let body = serde_json::to_vec(&n.report()).unwrap();
    let (status, text) = http(
        &c.url,
        "POST",
        "/v1/reports",
        &[
            ("content-type", "application/json"),
            ("authorization", "bearer tok-w1"),
        ],
        &body,
    );
    assert_eq!(status, 200, "{text}");
    let (status, text) = http(
        &c.url,
        "POST",
        "/v1/reports",
        &[("authorization", "BEARER tok-w1")],
        &serde_json::to_vec(&n.report()).unwrap(),
    );
    assert_eq!(status, 200, "{text}");
}

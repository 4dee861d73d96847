//! Bad input: a 4xx problem document, and nothing changes.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{spawn_app, TestApp};
use crate::raw::{Raw, PATIENCE};

const JSON: Option<&str> = Some("application/json");

/// Asserts an RFC 9457 problem document with `status`, and returns it.
async fn assert_problem(response: reqwest::Response, status: StatusCode, case: &str) -> Value {
    assert_eq!(response.status(), status, "{case}");
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json",
        "{case}"
    );
    let problem: Value = response.json().await.expect(case);
    for member in ["type", "title", "detail"] {
        assert!(
            problem[member].is_string(),
            "{case}: `{member}` in {problem}"
        );
    }
    assert_eq!(problem["status"], status.as_u16(), "{case}");
    problem
}

async fn seeded_app() -> TestApp {
    let app = spawn_app("mutex", "none").await;
    app.reset(1000).await;
    app
}

#[tokio::test]
async fn every_bad_body_gets_a_problem_document_and_changes_nothing() {
    let app = seeded_app().await;
    let before = app.stats().await;
    let too_deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let too_large = format!(r#"{{"amount": 5, "padding": "{}"}}"#, "x".repeat(5000));
    let cases: Vec<(&str, Option<&str>, String, StatusCode)> = vec![
        ("no body", JSON, String::new(), StatusCode::BAD_REQUEST),
        ("not JSON", JSON, "amount=5".into(), StatusCode::BAD_REQUEST),
        (
            "truncated JSON",
            JSON,
            r#"{"amount": 5"#.into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "no content type",
            None,
            r#"{"amount": 5}"#.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "text content type",
            Some("text/plain"),
            r#"{"amount": 5}"#.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "form content type",
            Some("application/x-www-form-urlencoded"),
            "amount=5".into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "missing amount",
            JSON,
            "{}".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "misspelt amount",
            JSON,
            r#"{"amout": 5}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "zero",
            JSON,
            r#"{"amount": 0}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "negative",
            JSON,
            r#"{"amount": -5}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "fractional",
            JSON,
            r#"{"amount": 5.5}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "whole but written as a float",
            JSON,
            r#"{"amount": 5.0}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "exponent",
            JSON,
            r#"{"amount": 5e2}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "string",
            JSON,
            r#"{"amount": "5"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "null",
            JSON,
            r#"{"amount": null}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "boolean",
            JSON,
            r#"{"amount": true}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "array",
            JSON,
            r#"{"amount": [5]}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "object",
            JSON,
            r#"{"amount": {"value": 5}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "one past i64::MAX",
            JSON,
            r#"{"amount": 9223372036854775808}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "beyond u64",
            JSON,
            r#"{"amount": 100000000000000000000000000000}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "huge float",
            JSON,
            r#"{"amount": 1e30}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "beyond f64",
            JSON,
            r#"{"amount": 1e400}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "duplicated key",
            JSON,
            r#"{"amount": 1, "amount": 2}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "body is an array",
            JSON,
            "[5]".into(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "body is a number",
            JSON,
            "5".into(),
            StatusCode::BAD_REQUEST,
        ),
        ("deeply nested", JSON, too_deep, StatusCode::BAD_REQUEST),
        ("oversized", JSON, too_large, StatusCode::PAYLOAD_TOO_LARGE),
        (
            "not a JSON value",
            JSON,
            r#"{"amount": five}"#.into(),
            StatusCode::BAD_REQUEST,
        ),
    ];

    for path in ["/deposit", "/withdraw"] {
        for (case, content_type, body, status) in &cases {
            let case = format!("{path}: {case}");
            let response = app.post_raw(path, *content_type, body).await;
            assert_problem(response, *status, &case).await;
        }
    }

    assert_eq!(app.stats().await, before, "bad input changed the account");
}

#[tokio::test]
async fn a_json_content_type_with_parameters_or_a_suffix_is_accepted() {
    let app = seeded_app().await;
    for content_type in [
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ] {
        let response = app
            .post_raw("/deposit", Some(content_type), r#"{"amount": 1}"#)
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{content_type}");
    }
}

#[tokio::test]
async fn a_deposit_that_would_overflow_the_balance_is_refused_not_wrapped() {
    let app = seeded_app().await;
    app.reset(i64::MAX - 1).await;
    let before = app.stats().await;

    let problem = assert_problem(
        app.deposit(2).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "overflow",
    )
    .await;

    assert_eq!(problem["balance"], i64::MAX - 1);
    assert_eq!(app.stats().await, before);
    assert_eq!(
        app.deposit(1).await.status(),
        StatusCode::OK,
        "exactly i64::MAX still fits"
    );
}

#[tokio::test]
async fn a_bad_reset_is_refused_and_changes_nothing() {
    let app = seeded_app().await;
    app.deposit(5).await;
    let before = app.stats().await;

    for (body, status) in [
        (r#"{"balance": -1}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (r#"{"balance": 1.5}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (r#"{"balance": "7"}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (r#"{"amount": 7}"#, StatusCode::UNPROCESSABLE_ENTITY),
        (
            r#"{"balance": 1, "balance": 2}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (r#"{"balance": 1e400}"#, StatusCode::UNPROCESSABLE_ENTITY),
        ("{", StatusCode::BAD_REQUEST),
    ] {
        let response = app.post_raw("/reset", JSON, body).await;
        assert_problem(response, status, body).await;
    }
    assert_eq!(app.stats().await, before);
}

/// A web page on another site can send a form post or `text/plain` to this server without asking
/// (no CORS preflight), but never `Content-Type: application/json`: requiring it, even of an empty
/// reset, is what keeps such a page from moving money or resetting the account.
#[tokio::test]
async fn a_state_changing_request_without_a_json_content_type_gets_415_even_with_an_empty_body() {
    let app = seeded_app().await;
    let before = app.stats().await;

    for path in ["/reset", "/deposit", "/withdraw"] {
        for content_type in [
            None,
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("text/plain"),
        ] {
            for body in ["", "balance=0&amount=5"] {
                let case = format!("{path} with {content_type:?} and body {body:?}");
                let response = app.post_raw(path, content_type, body).await;
                let problem =
                    assert_problem(response, StatusCode::UNSUPPORTED_MEDIA_TYPE, &case).await;
                assert_eq!(
                    problem["type"], "urn:racebank:problem:unsupported-media-type",
                    "{case}"
                );
            }
        }
    }
    assert_eq!(app.stats().await, before);
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_get_problem_documents() {
    let app = seeded_app().await;
    let before = app.stats().await;

    let missing = app.get("/accounts/1").await;
    assert_problem(missing, StatusCode::NOT_FOUND, "unknown route").await;

    for (method, path) in [
        (Method::GET, "/deposit"),
        (Method::PUT, "/withdraw"),
        (Method::POST, "/balance"),
        (Method::DELETE, "/stats"),
        (Method::GET, "/reset"),
    ] {
        let case = format!("{method} {path}");
        let response = app
            .client
            .request(method, format!("{}{path}", app.address))
            .send()
            .await
            .unwrap();
        assert!(
            response.headers().contains_key("allow"),
            "{case}: Allow header"
        );
        assert_problem(response, StatusCode::METHOD_NOT_ALLOWED, &case).await;
    }
    assert_eq!(app.stats().await, before);
}

#[tokio::test]
async fn numbers_the_account_cannot_take_are_refused_with_a_precise_reason() {
    let app = seeded_app().await;
    let before = app.stats().await;

    for (path, body, reason) in [
        ("/deposit", r#"{"amount": -0}"#, "`amount` must be positive, got -0"),
        (
            "/withdraw",
            r#"{"amount": -9223372036854775809}"#,
            "`amount` must be positive, got -9223372036854775809",
        ),
        (
            "/deposit",
            r#"{"amount": 1e400}"#,
            "`amount` is 1e400, beyond the largest the account holds (9223372036854775807)",
        ),
        (
            "/deposit",
            r#"{"amount": 9223372036854775808}"#,
            "`amount` is 9223372036854775808, beyond the largest the account holds",
        ),
        (
            "/deposit",
            r#"{"amount": 5E+2}"#,
            "`amount` must be written as an integer, without a decimal point or exponent, got 5E+2",
        ),
        (
            "/deposit",
            r#"{"amount": 0.5e1}"#,
            "`amount` must be written as an integer, without a decimal point or exponent, got 0.5e1",
        ),
        (
            "/deposit",
            r#"{"amount": 5.000000000000000001}"#,
            "`amount` must be a whole number of minor units (cents), got 5.000000000000000001",
        ),
        (
            "/reset",
            r#"{"balance": -9223372036854775809}"#,
            "`balance` must be at least 0, got -9223372036854775809",
        ),
        (
            "/reset",
            r#"{"balance": -1e400}"#,
            "`balance` must be at least 0, got -1e400",
        ),
        (
            "/reset",
            r#"{"balance": 1, "balance": 2}"#,
            "`balance` appears twice",
        ),
    ] {
        let case = format!("{path} {body}");
        let response = app.post_raw(path, JSON, body).await;
        let problem = assert_problem(response, StatusCode::UNPROCESSABLE_ENTITY, &case).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.starts_with(reason), "{case}: {detail}");
    }
    assert_eq!(app.stats().await, before);
}

#[tokio::test]
async fn minus_zero_is_zero() {
    let app = seeded_app().await;

    let response = app.post_raw("/reset", JSON, r#"{"balance": -0}"#).await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(app.balance().await, 0);
}

/// Sends `request` on a new connection and returns the answer.
async fn raw_answer(app: &TestApp, request: &str) -> crate::raw::Outcome {
    let mut connection = Raw::connect(app).await;
    connection.send(request.as_bytes()).await;
    connection.outcome(PATIENCE).await
}

#[tokio::test]
async fn an_http_1_1_request_needs_exactly_one_host_header() {
    let app = seeded_app().await;
    let before = app.stats().await;
    let body = r#"{"amount": 5}"#;

    for (case, hosts) in [("no Host", ""), ("two Hosts", "Host: a\r\nHost: b\r\n")] {
        let answer = raw_answer(
            &app,
            &format!(
                "POST /deposit HTTP/1.1\r\n{hosts}Content-Type: application/json\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;

        assert_eq!(answer.status(), Some(400), "{case}: {answer:?}");
        assert_eq!(
            answer.header("content-type").as_deref(),
            Some("application/problem+json"),
            "{case}"
        );
        assert_eq!(
            answer.json()["type"],
            "urn:racebank:problem:bad-host",
            "{case}"
        );
    }
    assert_eq!(app.stats().await, before);
}

#[tokio::test]
async fn a_transfer_coding_other_than_chunked_gets_501_and_changes_nothing() {
    let app = seeded_app().await;
    let before = app.stats().await;

    let answer = raw_answer(
        &app,
        "POST /deposit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: gzip, chunked\r\n\r\nd\r\n{\"amount\": 5}\r\n0\r\n\r\n",
    )
    .await;

    assert_eq!(answer.status(), Some(501), "{answer:?}");
    assert_eq!(
        answer.json()["type"],
        "urn:racebank:problem:unsupported-transfer-coding"
    );
    assert_eq!(app.stats().await, before);
}

#[tokio::test]
async fn expect_100_continue_with_a_body_over_the_limit_gets_413_without_continue() {
    let app = seeded_app().await;

    let answer = raw_answer(
        &app,
        "POST /deposit HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;

    assert_eq!(answer.status(), Some(413), "{answer:?}");
    assert_eq!(answer.json()["type"], "urn:racebank:problem:body-too-large");
}

//! `GET /openapi.json`: the description is served, covers every route and every problem, and
//! agrees with what the server really answers.

use std::collections::BTreeSet;

use racebank::wire::ProblemType;
use racebank::{IdempotencyKey, LockOrder};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::bank::{bank_config, transfer};
use crate::helpers::{spawn_app, spawn_with, TestApp};

/// The bank the bank's routes are checked against: `a` and `b` a household, `c` on its own.
const BANK: &[(&str, i64)] = &[("a", 100), ("b", 0), ("c", 100)];
const HOUSEHOLDS: &[&[&str]] = &[&["a", "b"]];

/// A server with [`BANK`] beside its account.
async fn spawn_bank(mode: &str, work: &str) -> TestApp {
    spawn_with(bank_config(mode, work, BANK, HOUSEHOLDS)).await
}

/// The description, as served.
async fn description(app: &TestApp) -> Value {
    app.get("/openapi.json").await.json().await.unwrap()
}

/// `value`, or the schema its `$ref` points at.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local reference");
            document.pointer(pointer).expect("the reference resolves")
        }
        None => value,
    }
}

/// The documented response of `method path` with `status`.
fn response<'a>(document: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let response = &document["paths"][path][method]["responses"][status.to_string()];
    assert!(
        response.is_object(),
        "{method} {path} documents no {status}"
    );
    response
}

/// The schema of a response's body of `media_type`, its `$ref` followed.
fn body_schema<'a>(document: &'a Value, response: &'a Value, media_type: &str) -> &'a Value {
    let schema = &response["content"][media_type]["schema"];
    assert!(schema.is_object(), "no {media_type} body in {response}");
    resolve(document, schema)
}

/// The members of a JSON object.
fn members(object: &Value) -> BTreeSet<String> {
    object
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

/// The properties a schema documents, and those it requires.
fn documented(schema: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let required = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|name| name.as_str().unwrap().to_string())
        .collect();
    (members(&schema["properties"]), required)
}

/// The route paths declared in `racebank::wire::paths` and `racebank::wire::bank::paths`, read
/// from their source, so that a path added there is checked here without being listed again.
fn wire_paths() -> Vec<(String, String)> {
    [
        ("", include_str!("../../src/wire/mod.rs")),
        ("bank::", include_str!("../../src/wire/bank.rs")),
    ]
    .into_iter()
    .flat_map(|(prefix, source)| {
        let start = source
            .find("pub mod paths {")
            .unwrap_or_else(|| panic!("wire::{prefix} has a paths module"));
        let module = &source[start..start + source[start..].find("\n}").unwrap()];
        module.lines().filter_map(move |line| {
            let declaration = line.trim().strip_prefix("pub const ")?;
            let (name, rest) = declaration.split_once(": &str = \"")?;
            let path = rest.strip_suffix("\";")?;
            Some((format!("{prefix}{name}"), path.to_string()))
        })
    })
    .collect()
}

/// The documented operations whose tag is `tag`: `(method, path)`.
fn tagged(document: &Value, tag: &str) -> Vec<(String, String)> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let tags = operation["tags"].as_array().into_iter().flatten();
            if tags.into_iter().any(|t| t == tag) {
                operations.push((method.clone(), path.clone()));
            }
        }
    }
    operations
}

/// Checks `value` against `schema` as far as the description's answers go: an object has every
/// required member and no undocumented one (`additionalProperties: false`), each checked in turn;
/// an array's items likewise; an integer is an integer within its bounds. Says where it differs.
fn assert_conforms(document: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(document, schema);
    if let Some(properties) = schema["properties"].as_object() {
        let (documented, required) = documented(schema);
        let members = members(value);
        assert!(
            required.is_subset(&members),
            "{at}: {value} lacks a required member"
        );
        if schema["additionalProperties"] == false {
            assert!(
                members.is_subset(&documented),
                "{at}: {value} has undocumented members"
            );
        }
        for (name, member) in value.as_object().unwrap() {
            if let Some(property) = properties.get(name) {
                assert_conforms(document, property, member, &format!("{at}.{name}"));
            }
        }
    } else if schema["type"] == "array" {
        for (n, item) in value.as_array().expect("an array").iter().enumerate() {
            assert_conforms(document, &schema["items"], item, &format!("{at}[{n}]"));
        }
    } else if schema["type"] == "integer" {
        let number = value.as_i64().or_else(|| value.as_u64().map(|_| i64::MAX));
        assert!(
            number.is_some() || value.is_number(),
            "{at}: {value} is not an integer"
        );
        if let (Some(minimum), Some(number)) = (schema["minimum"].as_i64(), number) {
            assert!(number >= minimum, "{at}: {value} is below {minimum}");
        }
    } else if let Some(allowed) = schema["enum"].as_array() {
        assert!(
            allowed.contains(value),
            "{at}: {value} is not one of {allowed:?}"
        );
    }
}

/// `answer`, a problem, is a problem document that `method path` documents for its status, with
/// its `type` among that status's; returns the document.
async fn assert_documented_problem(
    document: &Value,
    method: &str,
    path: &str,
    answer: Response,
) -> Value {
    let status = answer.status().as_u16();
    assert_eq!(
        answer.headers()["content-type"],
        "application/problem+json",
        "{method} {path} {status}"
    );
    let retry_after = answer.headers().get("retry-after").cloned();
    let body: Value = answer.json().await.unwrap();
    let documented = response(document, method, path, status);
    let schema = &documented["content"]["application/problem+json"]["schema"]["allOf"];
    assert_conforms(
        document,
        &schema[0],
        &body,
        &format!("{method} {path} {status}"),
    );
    let types = schema[1]["properties"]["type"]["enum"].as_array().unwrap();
    assert!(
        types.contains(&body["type"]),
        "{method} {path}: {} is not documented for {status}: {types:?}",
        body["type"]
    );
    let headers = members(documented.get("headers").unwrap_or(&json!({})));
    assert_eq!(
        retry_after.is_some(),
        headers.contains("retry-after"),
        "{method} {path} {status}: Retry-After sent and documented alike"
    );
    body
}

#[tokio::test]
async fn the_description_is_openapi_3_json() {
    let app = spawn_app("mutex", "none").await;

    let response = app.get("/openapi.json").await;

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let document: Value = response.json().await.expect("the description is JSON");
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi: {version:?}");
    assert_eq!(document["info"]["title"], "racebank");
    // Built once: the same bytes every time.
    let again = app.get("/openapi.json").await.text().await.unwrap();
    assert_eq!(serde_json::from_str::<Value>(&again).unwrap(), document);
}

#[tokio::test]
async fn every_path_of_the_wire_contract_is_described_and_every_described_route_is_served() {
    let app = spawn_bank("mutex", "none").await;
    let document = description(&app).await;
    let described = document["paths"].as_object().unwrap();

    let wire = wire_paths();
    assert!(wire.len() >= 14, "read too few paths from wire/: {wire:?}");
    for (name, path) in &wire {
        assert!(
            described.contains_key(path),
            "paths::{name} ({path}) is not in /openapi.json"
        );
    }
    for (path, item) in described {
        // `parameters` holds the path's `{id}`, not an operation.
        for method in item
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "parameters")
        {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            // Any answer will do but the router's "no such route" and "not this method", and a
            // bank's "no such account" for an account it holds.
            let served = path.replace("{id}", "a");
            let answer = app
                .client
                .request(method.clone(), format!("{}{served}", app.address))
                .send()
                .await
                .unwrap();
            assert!(
                ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&answer.status()),
                "{method} {path} is described but answers {}",
                answer.status()
            );
        }
    }
}

#[tokio::test]
async fn every_problem_type_is_described_with_its_status() {
    let app = spawn_app("mutex", "none").await;
    let document = description(&app).await;

    // (status, type) of every problem response: the operations' and the shared ones.
    let operations = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().iter())
        .filter(|(key, _)| *key != "parameters")
        .flat_map(|(_, operation)| operation["responses"].as_object().unwrap().iter());
    let shared = document["components"]["responses"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(_, response)| {
            let status = response["content"]["application/problem+json"]["schema"]["allOf"][1]
                ["properties"]["status"]["enum"][0]
                .to_string();
            (status, response)
        })
        .collect::<Vec<_>>();
    let mut described = BTreeSet::new();
    for (status, response) in operations
        .map(|(status, response)| (status.clone(), response))
        .chain(shared)
    {
        let Some(schema) = response["content"].get("application/problem+json") else {
            continue;
        };
        let narrowed = &schema["schema"]["allOf"][1]["properties"];
        assert_eq!(narrowed["status"]["enum"][0].to_string(), status);
        for urn in narrowed["type"]["enum"].as_array().unwrap() {
            described.insert((status.clone(), urn.as_str().unwrap().to_string()));
        }
    }

    for kind in ProblemType::ALL {
        let pair = (kind.status().to_string(), kind.urn().to_string());
        assert!(
            described.contains(&pair),
            "{kind:?} is not described as {pair:?}"
        );
    }
    for (status, urn) in &described {
        let kind = ProblemType::from_urn(urn).unwrap_or_else(|| panic!("unknown type {urn}"));
        assert_eq!(&kind.status().to_string(), status, "{urn}");
    }
}

#[tokio::test]
async fn a_deposit_and_the_stats_have_exactly_the_documented_members() {
    let app = spawn_bank("mutex", "none").await;
    let document = description(&app).await;

    let deposit = app.deposit(5).await;
    let stats = app.get("/stats").await;

    // `bank` is sent only by a server with a bank, as this one.
    let cases = [
        ("/deposit", "post", deposit, &[][..]),
        ("/stats", "get", stats, &["bank"][..]),
    ];
    for (path, method, answer, optional) in cases {
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        let body: Value = answer.json().await.unwrap();
        let schema = body_schema(
            &document,
            response(&document, method, path, 200),
            "application/json",
        );
        let (properties, required) = documented(schema);
        assert_eq!(members(&body), properties, "{path}: {body}");
        let optional: BTreeSet<String> = optional.iter().map(ToString::to_string).collect();
        assert_eq!(
            required,
            &properties - &optional,
            "{path}: every member but {optional:?} is always sent"
        );
        assert_eq!(schema["additionalProperties"], false, "{path}");
        assert_conforms(&document, schema, &body, path);
    }
}

#[tokio::test]
async fn every_bank_route_is_described_under_the_bank_tag_with_its_account_id() {
    let app = spawn_app("mutex", "none").await;
    let document = description(&app).await;

    let bank: BTreeSet<String> = wire_paths()
        .into_iter()
        .filter(|(name, _)| name.starts_with("bank::"))
        .map(|(_, path)| path)
        .collect();
    let tagged: BTreeSet<String> = tagged(&document, "bank")
        .into_iter()
        .map(|(_, path)| path)
        .collect();

    assert_eq!(tagged, bank, "the bank tag holds exactly the bank's paths");
    let tag = document["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tag| tag["name"] == "bank")
        .expect("the bank tag is described");
    assert!(
        tag["description"].as_str().unwrap().contains("--accounts"),
        "{tag}"
    );
    for path in bank.iter().filter(|path| path.contains("{id}")) {
        let id = &document["paths"][path]["parameters"][0];
        assert_eq!(
            (&id["name"], &id["in"]),
            (&json!("id"), &json!("path")),
            "{path}"
        );
        assert_eq!(id["required"], true, "{path}");
        assert_eq!(id["schema"]["pattern"], "^[A-Za-z0-9_-]{1,64}$", "{path}");
    }
}

#[tokio::test]
async fn a_server_without_a_bank_answers_every_bank_route_with_a_documented_404() {
    let app = spawn_app("mutex", "none").await;
    let document = description(&app).await;

    for (method, path) in tagged(&document, "bank") {
        let answer = app
            .client
            .request(
                method.to_uppercase().parse().unwrap(),
                format!("{}{}", app.address, path.replace("{id}", "a")),
            )
            .header("content-type", "application/json")
            .body(if method == "post" {
                r#"{"amount": 1}"#
            } else {
                ""
            })
            .send()
            .await
            .unwrap();

        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{method} {path}");
        let body = assert_documented_problem(&document, &method, &path, answer).await;
        assert_eq!(
            body["type"],
            ProblemType::UnknownAccount.urn(),
            "{method} {path}"
        );
        assert!(
            body["detail"].as_str().unwrap().contains("--accounts"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn every_bank_answer_has_exactly_the_documented_members() {
    let app = spawn_bank("mutex", "none").await;
    let document = description(&app).await;
    let post = |path: &'static str, body: Value| {
        let app = &app;
        async move {
            app.post_raw(path, Some("application/json"), &body.to_string())
                .await
        }
    };

    // A household withdrawal takes `b` below zero: the bank's balances may be negative.
    let cases = [
        ("get", "/accounts", "/accounts", app.get("/accounts").await),
        (
            "get",
            "/accounts/{id}",
            "/accounts/a",
            app.get("/accounts/a").await,
        ),
        (
            "post",
            "/accounts/{id}/deposit",
            "/accounts/c/deposit",
            post("/accounts/c/deposit", json!({"amount": 5})).await,
        ),
        (
            "post",
            "/accounts/{id}/withdraw",
            "/accounts/b/withdraw",
            post("/accounts/b/withdraw", json!({"amount": 30})).await,
        ),
        (
            "post",
            "/transfers",
            "/transfers",
            transfer(&app, "a", "c", 10).await,
        ),
        (
            "post",
            "/bank/reset",
            "/bank/reset",
            post("/bank/reset", json!({"balances": {"a": 7}})).await,
        ),
    ];

    for (method, path, sent, answer) in cases {
        assert_eq!(answer.status(), StatusCode::OK, "{method} {sent}");
        assert_eq!(answer.headers()["content-type"], "application/json");
        let body: Value = answer.json().await.unwrap();
        let schema = body_schema(
            &document,
            response(&document, method, path, 200),
            "application/json",
        );
        assert_conforms(&document, schema, &body, &format!("{method} {sent}"));
        let (properties, _) = documented(resolve(&document, schema));
        assert_eq!(members(&body), properties, "{method} {sent}: {body}");
    }
    let stats: Value = app.get("/stats").await.json().await.unwrap();
    assert_eq!(
        stats["bank"]["accounts"][0]["balance"], 7,
        "the reset above"
    );
}

/// A refused bank request: the operation's path, the path sent, the content type and body, and
/// the status and type of the answer.
type Refusal<'a> = (&'a str, &'a str, Option<&'a str>, &'a str, u16, ProblemType);

#[tokio::test]
async fn every_bank_refusal_is_a_documented_problem_document() {
    let app = spawn_bank("mutex", "none").await;
    let document = description(&app).await;
    let json_body = Some("application/json");
    let max = i64::MAX;

    let cases: &[Refusal] = &[
        (
            "/accounts/{id}/deposit",
            "/accounts/zz/deposit",
            json_body,
            r#"{"amount": 1}"#,
            404,
            ProblemType::UnknownAccount,
        ),
        (
            "/accounts/{id}/deposit",
            "/accounts/a/deposit",
            json_body,
            &format!(r#"{{"amount": {max}}}"#),
            422,
            ProblemType::BalanceOverflow,
        ),
        (
            "/accounts/{id}/deposit",
            "/accounts/a/deposit",
            json_body,
            r#"{"amount": 0}"#,
            422,
            ProblemType::InvalidField,
        ),
        (
            "/accounts/{id}/withdraw",
            "/accounts/c/withdraw",
            json_body,
            r#"{"amount": 101}"#,
            409,
            ProblemType::InsufficientFunds,
        ),
        (
            "/accounts/{id}/withdraw",
            "/accounts/b/withdraw",
            json_body,
            r#"{"amount": 101}"#,
            409,
            ProblemType::HouseholdLimit,
        ),
        (
            "/accounts/{id}/withdraw",
            "/accounts/a/withdraw",
            None,
            r#"{"amount": 1}"#,
            415,
            ProblemType::UnsupportedMediaType,
        ),
        (
            "/transfers",
            "/transfers",
            json_body,
            r#"{"from": "a", "to": "a", "amount": 1}"#,
            422,
            ProblemType::InvalidField,
        ),
        (
            "/transfers",
            "/transfers",
            json_body,
            r#"{"from": "a", "to": "zz", "amount": 1}"#,
            404,
            ProblemType::UnknownAccount,
        ),
        (
            "/transfers",
            "/transfers",
            json_body,
            r#"{"from": "c", "to": "a", "amount": 500}"#,
            409,
            ProblemType::InsufficientFunds,
        ),
        (
            "/transfers",
            "/transfers",
            json_body,
            r#"{"from": "a", "to": "#,
            400,
            ProblemType::MalformedBody,
        ),
        (
            "/bank/reset",
            "/bank/reset",
            json_body,
            r#"{"balances": {"zz": 1}}"#,
            404,
            ProblemType::UnknownAccount,
        ),
        (
            "/bank/reset",
            "/bank/reset",
            json_body,
            r#"{"balances": {"a": -1}}"#,
            422,
            ProblemType::InvalidField,
        ),
        (
            "/bank/reset",
            "/bank/reset",
            None,
            "",
            415,
            ProblemType::UnsupportedMediaType,
        ),
    ];
    for &(path, sent, content_type, body, status, kind) in cases {
        let answer = app.post_raw(sent, content_type, body).await;

        assert_eq!(answer.status().as_u16(), status, "POST {sent} {body}");
        let problem = assert_documented_problem(&document, "post", path, answer).await;
        assert_eq!(problem["type"], kind.urn(), "POST {sent} {body}: {problem}");
    }
    let unknown = app.get("/accounts/zz").await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_documented_problem(&document, "get", "/accounts/{id}", unknown).await;
    let keyed = app
        .client
        .post(format!("{}/transfers", app.address))
        .header("content-type", "application/json")
        .header("idempotency-key", "order-1")
        .body(r#"{"from": "a", "to": "c", "amount": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        keyed.status(),
        StatusCode::BAD_REQUEST,
        "the bank keeps no keys yet"
    );
    let problem = assert_documented_problem(&document, "post", "/transfers", keyed).await;
    assert_eq!(problem["type"], ProblemType::InvalidIdempotencyKey.urn());
}

#[tokio::test]
async fn a_deadlocked_transfer_is_a_documented_503_with_retry_after() {
    let mut config = bank_config("account-locks", "rendezvous:2", BANK, &[]);
    config.account.lock_order = LockOrder::Request;
    let app = spawn_with(config).await;
    let document = description(&app).await;

    let (first, second) = tokio::join!(transfer(&app, "a", "c", 10), transfer(&app, "c", "a", 10));

    let loser = if first.status() == StatusCode::OK {
        second
    } else {
        first
    };
    assert_eq!(loser.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem = assert_documented_problem(&document, "post", "/transfers", loser).await;
    assert_eq!(problem["type"], ProblemType::Deadlock.urn());
}

#[tokio::test]
async fn a_refused_withdrawal_is_a_documented_problem_document() {
    let app = spawn_app("mutex", "none").await;
    let document = description(&app).await;

    let refused = app.withdraw(10).await;

    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let body: Value = refused.json().await.unwrap();
    let documented_409 = response(&document, "post", "/withdraw", 409);
    let schema = &documented_409["content"]["application/problem+json"]["schema"]["allOf"];
    let problem = resolve(&document, &schema[0]);
    let (properties, required) = documented(problem);
    let members = members(&body);
    assert!(
        members.is_subset(&properties),
        "{body} has undocumented members"
    );
    assert!(
        required.is_subset(&members),
        "{body} lacks a required member"
    );
    assert_eq!(
        members,
        ["amount", "balance", "detail", "status", "title", "type"]
            .map(String::from)
            .into()
    );
    assert!(
        schema[1]["properties"]["type"]["enum"]
            .as_array()
            .unwrap()
            .contains(&body["type"]),
        "{} is not documented for 409",
        body["type"]
    );
    assert_eq!(body["type"], ProblemType::InsufficientFunds.urn());
}

#[tokio::test]
async fn the_documented_amount_bounds_and_closed_body_are_the_servers() {
    let app = spawn_app("mutex", "none").await;
    let document = description(&app).await;
    let body = &document["components"]["schemas"]["AmountBody"];
    let amount = &body["properties"]["amount"];
    assert_eq!(amount["type"], "integer");
    assert_eq!(body["additionalProperties"], false);
    let (minimum, maximum) = (amount["minimum"].as_i64(), amount["maximum"].as_i64());
    let (Some(minimum), Some(maximum)) = (minimum, maximum) else {
        panic!("amount documents no integer bounds: {amount}");
    };

    let unknown = app
        .post_raw(
            "/deposit",
            Some("application/json"),
            r#"{"amount": 1, "note": "x"}"#,
        )
        .await;
    let below = app.deposit(minimum - 1).await;
    let above = app
        .post_raw(
            "/deposit",
            Some("application/json"),
            &format!(r#"{{"amount": {}}}"#, i128::from(maximum) + 1),
        )
        .await;
    let largest = app.deposit(maximum).await;
    let smallest = app.withdraw(minimum).await;

    assert_eq!(unknown.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(below.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(above.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(largest.status(), StatusCode::OK);
    assert_eq!(smallest.status(), StatusCode::OK);
    assert_eq!(app.balance().await, maximum - minimum);
}

#[tokio::test]
async fn the_idempotency_headers_are_documented_as_the_server_sends_them() {
    let app = spawn_app("mutex", "none").await;
    let document = description(&app).await;
    let operation = &document["paths"]["/deposit"]["post"];
    let key = operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|parameter| parameter["in"] == "header")
        .expect("a header parameter");
    assert_eq!(key["required"], false);
    assert_eq!(key["schema"]["maxLength"], IdempotencyKey::MAX_LEN);
    let name = key["name"].as_str().unwrap();

    let deposit = || {
        app.client
            .post(format!("{}/deposit", app.address))
            .header("content-type", "application/json")
            .header(name, "order-42")
            .body(r#"{"amount": 5}"#)
            .send()
    };
    let first = deposit().await.unwrap();
    let repeat = deposit().await.unwrap();

    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(repeat.status(), StatusCode::OK);
    let documented = members(&response(&document, "post", "/deposit", 200)["headers"]);
    let replay_headers: BTreeSet<String> = repeat
        .headers()
        .keys()
        .filter(|header| !first.headers().contains_key(*header))
        .map(|header| header.as_str().to_string())
        .collect();
    assert!(!replay_headers.is_empty(), "a replay adds a header");
    assert!(
        replay_headers.is_subset(&documented),
        "{replay_headers:?} not all documented in {documented:?}"
    );
    assert_eq!(app.balance().await, 5);
}

//! `GET /openapi.json`: the description is served, covers every route and every problem, and
//! agrees with what the server really answers.

use std::collections::BTreeSet;

use racebank::wire::ProblemType;
use racebank::IdempotencyKey;
use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{spawn_app, TestApp};

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

/// The route paths declared in `racebank::wire::paths`, read from its source, so that a path added
/// there is checked here without being listed again.
fn wire_paths() -> Vec<(String, String)> {
    let source = include_str!("../../src/wire/mod.rs");
    let start = source
        .find("pub mod paths {")
        .expect("wire.rs has a paths module");
    let module = &source[start..start + source[start..].find("\n}").unwrap()];
    module
        .lines()
        .filter_map(|line| {
            let declaration = line.trim().strip_prefix("pub const ")?;
            let (name, rest) = declaration.split_once(": &str = \"")?;
            let path = rest.strip_suffix("\";")?;
            Some((name.to_string(), path.to_string()))
        })
        .collect()
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
    let app = spawn_app("mutex", "none").await;
    let document = description(&app).await;
    let described = document["paths"].as_object().unwrap();

    let wire = wire_paths();
    assert!(wire.len() >= 8, "read too few paths from wire.rs: {wire:?}");
    for (name, path) in &wire {
        assert!(
            described.contains_key(path),
            "paths::{name} ({path}) is not in /openapi.json"
        );
    }
    for (path, item) in described {
        for method in item.as_object().unwrap().keys() {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            // Any answer will do but the router's "no such route" and "not this method".
            let answer = app
                .client
                .request(method.clone(), format!("{}{path}", app.address))
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
        .flat_map(|item| item.as_object().unwrap().values())
        .flat_map(|operation| operation["responses"].as_object().unwrap().iter());
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
    let app = spawn_app("mutex", "none").await;
    let document = description(&app).await;

    let deposit = app.deposit(5).await;
    let stats = app.get("/stats").await;

    for (path, method, answer) in [("/deposit", "post", deposit), ("/stats", "get", stats)] {
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        let body: Value = answer.json().await.unwrap();
        let schema = body_schema(
            &document,
            response(&document, method, path, 200),
            "application/json",
        );
        let (properties, required) = documented(schema);
        assert_eq!(members(&body), properties, "{path}: {body}");
        assert_eq!(required, properties, "{path}: every member is always sent");
        assert_eq!(schema["additionalProperties"], false, "{path}");
    }
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

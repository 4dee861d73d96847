//! The live page over plain HTTP: what `GET /` serves and what its event stream says.
//! (`browser.rs` drives the same page in Chromium.)

use std::time::Duration;

use racebank::lesson;
use racebank::{Config, ServerConfig};
use reqwest::StatusCode;
use serde_json::Value;

use crate::bank::{bank_config, transfer};
use crate::helpers::{spawn_app, spawn_with, TestApp};

/// One server-sent event: its name and its data, parsed as JSON.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) event: String,
    pub(crate) data: Value,
}

/// An open `/live/events` stream.
pub(crate) struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    pub(crate) async fn open(app: &TestApp) -> Self {
        let response = app.get("/live/events").await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "an event stream"
        );
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event, or `None` when the server ended the stream.
    pub(crate) async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event = name.trim().to_string();
                    } else if let Some(text) = line.strip_prefix("data:") {
                        data.push_str(text.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a comment or a bare `retry:`
                }
                let data = serde_json::from_str(&data).expect("every frame's data is JSON");
                return Some(Frame { event, data });
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("a frame comes within 10 s")
                .expect("the stream reads cleanly")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// Skips frames until one satisfies `wanted`.
    pub(crate) async fn until(&mut self, wanted: impl Fn(&Frame) -> bool) -> Frame {
        // At 4 frames a second, 200 frames is 50 s: far beyond what any check below needs.
        for _ in 0..200 {
            let frame = self.next().await.expect("the stream stays open");
            if wanted(&frame) {
                return frame;
            }
        }
        panic!("no matching frame in 200");
    }
}

#[tokio::test]
async fn the_root_serves_the_page_with_a_policy_that_forbids_anything_from_elsewhere() {
    let app = spawn_app("mutex", "none").await;

    let page = app.get("/").await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let policy = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    let html = page.text().await.unwrap();
    assert!(html.contains("/live/page.js") && html.contains("/live/page.css"));

    for (path, kind) in [
        ("/live/page.css", "text/css"),
        ("/live/page.js", "text/javascript"),
    ] {
        let asset = app.get(path).await;
        assert_eq!(asset.status(), StatusCode::OK, "{path}");
        assert!(
            asset.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_stream_greets_with_the_mode_and_its_paragraph_then_sends_the_stats() {
    let app = spawn_app("semaphore:3", "none").await;
    let mut events = Events::open(&app).await;

    let hello = events.next().await.unwrap();
    assert_eq!(hello.event, "hello");
    assert_eq!(hello.data["mode"], "semaphore:3");
    assert_eq!(hello.data["work"], "none");
    assert_eq!(
        hello.data["lesson"].as_str(),
        lesson("semaphore:N"),
        "the page's paragraph comes from src/http/live/lesson.rs"
    );

    let first = events.next().await.unwrap();
    assert_eq!(first.event, "stats");
    assert_eq!(first.data["stats"]["balance"], 0);
    assert_eq!(first.data["requests_per_second"], 0.0);

    assert_eq!(app.deposit(7).await.status(), StatusCode::OK);
    let after = events
        .until(|frame| frame.data["stats"]["deposit_count"] == 1)
        .await;
    assert_eq!(after.data["stats"]["balance"], 7);
    assert_eq!(after.data["stats"]["expected_balance"], 7);
    assert!(after.data["requests_per_second"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn the_streams_first_event_carries_the_current_numbers() {
    let app = spawn_app("mutex", "none").await;
    assert_eq!(app.deposit(5).await.status(), StatusCode::OK);
    let mut events = Events::open(&app).await;

    let hello = events.next().await.unwrap();

    // The page shows numbers from the first event, not dashes until the first tick's frame.
    assert_eq!(hello.event, "hello");
    assert_eq!(hello.data["stats"]["balance"], 5);
    assert_eq!(hello.data["stats"]["deposit_count"], 1);
    assert_eq!(hello.data["requests_per_second"], 0.0);
}

#[tokio::test]
async fn the_stream_shows_a_lost_update_the_moment_it_happens() {
    let app = spawn_app("unguarded", "rendezvous:2").await;
    let mut events = Events::open(&app).await;

    app.concurrently(&[5, 5]).await;

    let frame = events
        .until(|frame| frame.data["stats"]["deposit_count"] == 2)
        .await;
    let stats = &frame.data["stats"];
    assert_eq!(stats["balance"], 5);
    assert_eq!(stats["expected_balance"], 10);
    assert_eq!(stats["lost_updates"], 1);
    assert_eq!(stats["lost_net"], 5);
}

#[tokio::test]
async fn without_a_bank_the_stream_carries_no_bank_block() {
    let app = spawn_app("unguarded", "none").await;
    let mut events = Events::open(&app).await;

    let hello = events.next().await.unwrap();
    let first = events.next().await.unwrap();

    assert_eq!(
        (hello.event.as_str(), first.event.as_str()),
        ("hello", "stats")
    );
    assert!(hello.data.get("bank").is_none(), "{:#}", hello.data);
    assert!(first.data.get("bank").is_none(), "{:#}", first.data);
}

#[tokio::test]
async fn with_a_bank_the_stream_carries_its_books_and_shows_the_total_move() {
    let accounts = [("a", 100), ("b", 100), ("c", 100)];
    let app = spawn_with(bank_config("unguarded", "rendezvous:2", &accounts, &[])).await;
    let mut events = Events::open(&app).await;

    let hello = events.next().await.unwrap();
    let bank = &hello.data["bank"];
    assert_eq!(hello.event, "hello");
    assert_eq!(
        (bank["total"].as_i64(), bank["expected_total"].as_i64()),
        (Some(300), Some(300))
    );
    assert_eq!(bank["account_count"], 3);
    let ids: Vec<&str> = bank["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|account| account["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);

    // Two transfers that share b meet at the rendezvous: one write to b erases the other's.
    let (first, second) = tokio::join!(transfer(&app, "a", "b", 10), transfer(&app, "b", "c", 10));
    assert_eq!(
        (first.status(), second.status()),
        (StatusCode::OK, StatusCode::OK)
    );

    let frame = events
        .until(|frame| frame.data["bank"]["transfers"] == 2)
        .await;
    let bank = &frame.data["bank"];
    let n = |key: &str| bank[key].as_i64().unwrap();
    assert_eq!(n("expected_total"), 300, "{bank:#}");
    assert_eq!(n("lost_updates"), 1, "{bank:#}");
    assert_eq!(n("money_created") + n("money_destroyed"), 10, "{bank:#}");
    assert_eq!(
        n("total"),
        300 + n("money_created") - n("money_destroyed"),
        "{bank:#}"
    );
    assert_ne!(n("total"), 300, "the total moved off the expected total");
    assert!(
        frame.data["stats"].get("bank").is_none(),
        "the bank is beside the stats, once"
    );
}

#[tokio::test]
async fn a_big_banks_stream_carries_only_its_first_hundred_accounts() {
    let ids: Vec<String> = (0..150).map(|i| format!("acct{i}")).collect();
    let accounts: Vec<(&str, i64)> = ids.iter().map(|id| (id.as_str(), 100)).collect();
    let app = spawn_with(bank_config("mutex", "none", &accounts, &[])).await;
    let mut events = Events::open(&app).await;

    let hello = events.next().await.unwrap();

    let bank = &hello.data["bank"];
    assert_eq!(bank["account_count"], 150);
    assert_eq!(bank["accounts"].as_array().unwrap().len(), 100);
    assert_eq!(bank["accounts"][99]["id"], "acct99");
    assert_eq!(bank["total"], 15_000, "the books still cover every account");
}

#[tokio::test]
async fn an_open_page_does_not_hold_up_shutdown() {
    // A grace far longer than the helper's 10 s bound on shutdown: if the open stream held the
    // drain, shutdown would wait out the grace and the helper would fail.
    let app = spawn_with(Config {
        server: ServerConfig {
            shutdown_grace: Duration::from_secs(120),
            ..ServerConfig::default()
        },
        ..Config::default()
    })
    .await;
    let mut events = Events::open(&app).await;
    assert_eq!(events.next().await.unwrap().event, "hello");

    let stats = app.shutdown().await;

    assert_eq!(stats.deposit_count, 0);
    let mut frames = 0;
    while events.next().await.is_some() {
        frames += 1;
        assert!(frames < 200, "the stream must end once shutdown begins");
    }
}

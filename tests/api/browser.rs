//! The live page in a real browser: headless Chromium, driven over WebDriver by chromedriver.
//!
//! Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the test fails
//! with one line saying how to install them: a browser test that skips itself tests nothing.
//!
//! Every wait polls the page's DOM for the expected text, with a deadline; nothing sleeps in
//! place of a check. The screenshot goes to `target/screenshots/live.png`, and also to
//! `$RACEBANK_SCREENSHOT` when set (README's picture: `RACEBANK_SCREENSHOT=docs/live.png cargo
//! test --test api browser`); the bank's page to `target/screenshots/live-bank.png`.

use std::ffi::OsString;
use std::net::TcpListener;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::bank::{bank_config, transfer};
use crate::helpers::{spawn_app, spawn_with, TestApp};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long any one thing may take to show on the page: generous, for a loaded CI machine.
const DEADLINE: Duration = Duration::from_secs(30);

/// The window: a laptop screen. The screenshot grows it to the page's full height.
const WINDOW: (u32, u32) = (1024, 800);

/// A phone's width, for the second screenshot.
const PHONE_WIDTH: u32 = 390;

/// Bursts of twenty for the picture.
const BURSTS: u64 = 8;

#[tokio::test]
async fn the_live_page_shows_a_lost_update_from_a_burst_and_reset_clears_it() {
    let app = spawn_app("unguarded", "rendezvous:2").await;
    let browser = Browser::start().await;

    let outcome = AssertUnwindSafe(drive(&browser.client, &app))
        .catch_unwind()
        .await;

    browser.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[tokio::test]
async fn the_live_page_shows_the_bank_total_leave_its_expected_total_and_reset_brings_it_back() {
    let accounts = [("a", 100), ("b", 100), ("c", 100)];
    let app = spawn_with(bank_config("unguarded", "rendezvous:2", &accounts, &[])).await;
    let browser = Browser::start().await;

    let outcome = AssertUnwindSafe(drive_bank(&browser.client, &app))
        .catch_unwind()
        .await;

    browser.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The scenario itself, so that the browser is closed whether it passes or not.
async fn drive(page: &Client, app: &TestApp) {
    page.goto(&format!("{}/", app.address)).await.unwrap();

    // The page loads, connects and shows the account; without a bank, no bank section.
    wait_for(page, "#connection", Probe::Data("state"), "live").await;
    assert!(
        bank_hidden(page).await,
        "a server without a bank shows no bank"
    );
    wait_for(page, "#mode", Probe::Text, "unguarded").await;
    wait_for(page, "#work", Probe::Text, "rendezvous:2").await;
    wait_for(page, "#balance", Probe::Text, "0").await;
    wait_for(page, "#lost-updates", Probe::Text, "0").await;
    let lesson = racebank::lesson("unguarded").unwrap();
    wait_for(page, "#lesson", Probe::Text, lesson).await;

    // A burst of two, sent from the keyboard: both deposits meet at the rendezvous, read 0, write 5.
    let count = page.find(Locator::Id("burst-count")).await.unwrap();
    count.clear().await.unwrap();
    count
        .send_keys(&format!("2{}", char::from(Key::Enter)))
        .await
        .unwrap();
    wait_for(page, "#burst-result", Probe::Data("answered"), "2").await;
    wait_for(page, "#burst-result", Probe::Data("ok"), "2").await;
    wait_for(page, "#burst-result", Probe::Data("repeats"), "1").await;
    wait_for(page, "#lost-updates", Probe::Text, "1").await;
    wait_for(page, "#lost-amount", Probe::Text, "5").await;
    wait_for(page, "#balance", Probe::Text, "5").await;
    wait_for(page, "#expected", Probe::Text, "10").await;
    let stats = app.stats().await;
    assert_eq!((stats.lost_updates, stats.balance), (1, 5), "{stats:?}");

    // Bursts of twenty with the mouse, each drawn on the chart before the next, for a picture
    // with time in it. Pairs meet at the rendezvous, so about half of each burst is lost; the
    // exact count is the server's, and the page must end up showing exactly that.
    set_value(page, "burst-count", "20").await;
    for burst in 1..=BURSTS {
        let frames = read(page, "#chart", Probe::Data("frames")).await;
        let frames: u64 = frames.parse().expect("the chart counts its frames");
        page.find(Locator::Id("burst-send"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        wait_for(page, "#burst-result", Probe::Data("answered"), "20").await;
        let deposits = format!("{} deposits", 2 + 20 * burst);
        wait_until(page, "#counters", Probe::Text, &deposits, |text| {
            text.contains(&deposits)
        })
        .await;
        let later = format!("frame {} or later", frames + 3);
        wait_until(page, "#chart", Probe::Data("frames"), &later, |seen| {
            seen.parse::<u64>().is_ok_and(|seen| seen >= frames + 3)
        })
        .await;
    }
    let stats = app.stats().await;
    assert_eq!(stats.deposit_count, 2 + 20 * BURSTS);
    assert!(stats.lost_updates > 1, "{stats:?}");
    wait_for(
        page,
        "#lost-updates",
        Probe::Text,
        &stats.lost_updates.to_string(),
    )
    .await;
    wait_for(page, "#balance", Probe::Text, &stats.balance.to_string()).await;
    wait_for(
        page,
        "#expected",
        Probe::Text,
        &stats.expected_balance.to_string(),
    )
    .await;
    for shot in [
        Shot {
            name: "live.png",
            width: WINDOW.0,
            until: None,
            also: None,
        },
        Shot {
            name: "live-phone.png",
            width: PHONE_WIDTH,
            until: None,
            also: None,
        },
        // README's picture: down to the burst's verdict, without the small print below it.
        Shot {
            name: "live-readme.png",
            width: WINDOW.0,
            until: Some("#burst-result"),
            also: std::env::var_os("RACEBANK_SCREENSHOT"),
        },
    ] {
        save_screenshot(page, shot).await;
    }
    page.set_window_size(WINDOW.0, WINDOW.1).await.unwrap();

    // Reset zeroes everything, on the server and on the page.
    page.find(Locator::Id("reset"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(page, "#burst-result", Probe::Data("state"), "reset").await;
    wait_for(page, "#lost-updates", Probe::Text, "0").await;
    wait_for(page, "#lost-amount", Probe::Text, "0").await;
    wait_for(page, "#balance", Probe::Text, "0").await;
    wait_for(page, "#expected", Probe::Text, "0").await;
    let stats = app.stats().await;
    assert_eq!((stats.lost_updates, stats.deposit_count), (0, 0));
}

/// The bank's scenario: two transfers that share an account erase one write, the total leaves the
/// expected total on the page and its chart, a burst from the page's button is answered, and a
/// reset of the bank puts the line back on the expected total.
async fn drive_bank(page: &Client, app: &TestApp) {
    page.goto(&format!("{}/", app.address)).await.unwrap();
    wait_for(page, "#connection", Probe::Data("state"), "live").await;
    wait_for(page, "#bank-total", Probe::Text, "300").await;
    assert!(!bank_hidden(page).await, "a server with a bank shows it");
    wait_for(page, "#bank-expected", Probe::Text, "300").await;
    wait_for(page, "#accounts-note", Probe::Text, "3 accounts.").await;
    wait_for(page, "#accounts tbody tr:nth-child(2) td", Probe::Text, "b").await;
    assert_eq!(
        chart_gap(page).await,
        Some((0.0, 0.0)),
        "a flat line at first"
    );

    // a->b and b->c meet at the rendezvous: one write to b erases the other's, 10 one way.
    let (first, second) = tokio::join!(transfer(app, "a", "b", 10), transfer(app, "b", "c", 10));
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let bank = bank_books(app).await;
    let total = bank["total"].as_i64().unwrap();
    assert_eq!(total.abs_diff(300), 10, "{bank:#}");
    wait_for(page, "#bank-total", Probe::Text, &total.to_string()).await;
    wait_for(page, "#bank-expected", Probe::Text, "300").await;
    let moved = if total > 300 {
        "#bank-created"
    } else {
        "#bank-destroyed"
    };
    wait_for(page, moved, Probe::Text, "10").await;
    wait_for_gap(page, "the line off the expected total", |(last, _)| {
        last.abs() > 10.0
    })
    .await;

    // A burst of transfers from the page's own button.
    set_value(page, "transfer-count", "20").await;
    page.find(Locator::Id("transfer-send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(page, "#transfer-result", Probe::Data("answered"), "20").await;
    let bank = bank_books(app).await;
    let decided = bank["transfers"].as_u64().unwrap() + bank["refused"].as_u64().unwrap();
    assert_eq!(decided, 22, "{bank:#}");
    wait_for(page, "#bank-total", Probe::Text, &bank["total"].to_string()).await;
    save_screenshot(
        page,
        Shot {
            name: "live-bank.png",
            width: WINDOW.0,
            until: None,
            also: None,
        },
    )
    .await;
    page.set_window_size(WINDOW.0, WINDOW.1).await.unwrap();

    // Reset: every account back to 100, the books zeroed, the line back on the expected total.
    page.find(Locator::Id("bank-reset"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(page, "#transfer-result", Probe::Data("state"), "reset").await;
    wait_for(page, "#bank-total", Probe::Text, "300").await;
    wait_for(page, "#bank-created", Probe::Text, "0").await;
    wait_for(page, "#bank-destroyed", Probe::Text, "0").await;
    wait_for_gap(
        page,
        "the whole line on the expected total",
        |(_, widest)| widest == 0.0,
    )
    .await;
    let bank = bank_books(app).await;
    assert_eq!(
        (bank["total"].as_i64(), bank["transfers"].as_u64()),
        (Some(300), Some(0))
    );
}

/// `GET /stats`'s `bank` block.
async fn bank_books(app: &TestApp) -> Value {
    let stats: Value = app.get("/stats").await.json().await.unwrap();
    stats["bank"].clone()
}

/// Whether the page hides its bank section.
async fn bank_hidden(page: &Client) -> bool {
    let hidden = page
        .execute("return document.getElementById('bank').hidden;", vec![])
        .await
        .expect("the page runs a script");
    hidden == Value::Bool(true)
}

/// How far the total-over-time chart's line is from the expected total's, in pixels: at its last
/// point, and at the point where it is furthest. `None` before the chart has lines.
async fn chart_gap(page: &Client) -> Option<(f64, f64)> {
    let script = "const box = document.getElementById('bank-chart');\
                  const actual = box.querySelector('polyline.line-actual');\
                  const expected = box.querySelector('polyline.line-expected');\
                  if (!actual || !expected) return null;\
                  const ys = (line) => line.getAttribute('points').trim().split(' ')\
                      .map((point) => Number(point.split(',')[1]));\
                  const [a, e] = [ys(actual), ys(expected)];\
                  return [e[e.length - 1] - a[a.length - 1],\
                          Math.max(...a.map((y, i) => Math.abs(y - e[i])))];";
    let gap = page
        .execute(script, vec![])
        .await
        .expect("the page runs a script");
    let gap = gap.as_array()?;
    Some((gap[0].as_f64()?, gap[1].as_f64()?))
}

/// Polls the total-over-time chart until its gap (see [`chart_gap`]) satisfies `wanted`.
async fn wait_for_gap(page: &Client, expected: &str, wanted: impl Fn((f64, f64)) -> bool) {
    let start = Instant::now();
    let mut seen = None;
    while start.elapsed() < DEADLINE {
        seen = chart_gap(page).await;
        if seen.is_some_and(&wanted) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the bank's chart should show {expected} within {DEADLINE:?}; its gap is {seen:?}");
}

/// What of an element to read.
#[derive(Debug, Clone, Copy)]
enum Probe<'a> {
    /// Its text, trimmed.
    Text,
    /// Its `data-*` attribute of this name.
    Data(&'a str),
}

/// What the element `selector` shows now (an empty string if it does not exist yet).
async fn read(page: &Client, selector: &str, probe: Probe<'_>) -> String {
    let script = "const [selector, data] = arguments;\
                  const element = document.querySelector(selector);\
                  if (!element) return null;\
                  return data === null ? element.textContent.trim() : element.getAttribute('data-' + data);";
    let data = match probe {
        Probe::Data(name) => json!(name),
        Probe::Text => Value::Null,
    };
    let seen = page
        .execute(script, vec![json!(selector), data])
        .await
        .expect("the page runs a script");
    seen.as_str().unwrap_or_default().to_string()
}

/// Polls the page until the element `selector` shows exactly `expected`.
async fn wait_for(page: &Client, selector: &str, probe: Probe<'_>, expected: &str) {
    wait_until(page, selector, probe, expected, |seen| seen == expected).await;
}

/// Polls the page until what the element `selector` shows satisfies `wanted` (described by
/// `expected`), or fails at the deadline with what it showed last.
async fn wait_until(
    page: &Client,
    selector: &str,
    probe: Probe<'_>,
    expected: &str,
    wanted: impl Fn(&str) -> bool,
) {
    let start = Instant::now();
    let mut seen = String::new();
    while start.elapsed() < DEADLINE {
        seen = read(page, selector, probe).await;
        if wanted(&seen) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{selector} ({probe:?}) should show {expected:?} within {DEADLINE:?}; it shows {seen:?}"
    );
}

/// Types `value` into the input `id`, replacing what was there.
async fn set_value(page: &Client, id: &str, value: &str) {
    let input = page.find(Locator::Id(id)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

/// A screenshot to take.
struct Shot {
    /// The file in `target/screenshots/`.
    name: &'static str,
    /// The window's width.
    width: u32,
    /// Down to the bottom of this element; the whole page if `None`.
    until: Option<&'static str>,
    /// Another path to write it to.
    also: Option<OsString>,
}

/// Takes `shot` from the top of the page, the window grown to the height wanted.
async fn save_screenshot(page: &Client, shot: Shot) {
    let Shot {
        name,
        width,
        until,
        also,
    } = shot;
    page.set_window_size(width, WINDOW.1).await.unwrap();
    // The window's frame (if any) plus the height wanted; no focus ring, no scroll.
    let script = "const [until] = arguments;\
                  document.activeElement?.blur(); window.scrollTo(0, 0);\
                  const bottom = until === null ? document.documentElement.scrollHeight\
                      : Math.ceil(document.querySelector(until).getBoundingClientRect().bottom) + 8;\
                  return window.outerHeight - window.innerHeight + bottom;";
    let until = until.map_or(Value::Null, |selector| json!(selector));
    let height = page.execute(script, vec![until]).await.unwrap();
    let height = height
        .as_u64()
        .and_then(|height| u32::try_from(height).ok())
        .unwrap_or(WINDOW.1)
        .clamp(600, 4000);
    page.set_window_size(width, height).await.unwrap();
    page.execute("window.scrollTo(0, 0);", vec![])
        .await
        .unwrap();
    let png = page.screenshot().await.expect("a screenshot");
    let mut paths = vec![target_dir().join("screenshots").join(name)];
    paths.extend(also.map(PathBuf::from));
    for path in paths {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&path, &png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}

/// `target/` (or wherever `CARGO_TARGET_DIR` points).
fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_path_buf()
}

/// chromedriver on a free loopback port, and one Chromium session with a fresh profile.
struct Browser {
    client: Client,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    async fn start() -> Self {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "the browser test needs {path} (package {package}): apt-get install -y chromium chromium-driver"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let webdriver = format!("http://127.0.0.1:{port}");
        wait_until_ready(&webdriver).await;

        let profile = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("chromium-profile-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).unwrap();
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                    "--force-device-scale-factor=1",
                    format!("--window-size={},{}", WINDOW.0, WINDOW.1),
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .expect("chromedriver starts a Chromium session");
        Browser {
            client,
            driver,
            profile,
        }
    }

    /// Ends the session (Chromium quits), then chromedriver.
    async fn close(mut self) {
        let _ = self.client.clone().close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Polls chromedriver's `/status` until it says it is ready.
async fn wait_until_ready(webdriver: &str) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if let Ok(response) = http.get(format!("{webdriver}/status")).send().await {
            if let Ok(status) = response.json::<Value>().await {
                if status["value"]["ready"] == true {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("chromedriver did not become ready at {webdriver} within {DEADLINE:?}");
}

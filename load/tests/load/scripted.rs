//! Hand-written servers that answer exactly what a test needs (issue 17: never cry wolf, never
//! lose money quietly): an attempt applied and answered 500 `outcome-unknown`, then 503 to its
//! retry; runs without evidence; answers that repeat a balance while the money is right; a final
//! balance no account can hold; 503 with `Retry-After`; redirects to another origin.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use racebank::wire::ProblemType;
use racebank_load::{
    Conclusion, Render as _, EXIT_INCONCLUSIVE, EXIT_INCONSISTENT_ANSWERS, EXIT_PROTOCOL_ERROR,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::closing::read_request;
use crate::helpers::opts;

/// One request as the scripted server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// When it arrived.
    pub at: Instant,
    /// Its head (request line and headers).
    pub head: String,
}

/// What the script answers: status line, extra header lines, body.
pub(crate) struct Answer {
    status: &'static str,
    headers: String,
    body: String,
}

impl Answer {
    fn json(status: &'static str, body: String) -> Self {
        Answer {
            status,
            headers: String::new(),
            body,
        }
    }

    fn balance(balance: i64) -> Self {
        Answer::json("200 OK", format!(r#"{{"balance":{balance}}}"#))
    }

    fn problem(status: &'static str, problem: ProblemType) -> Self {
        Answer::json(
            status,
            format!(r#"{{"type":"{}","title":"scripted"}}"#, problem.urn()),
        )
    }

    fn with_header(mut self, line: &str) -> Self {
        self.headers.push_str(line);
        self.headers.push_str("\r\n");
        self
    }
}

type Script = dyn Fn(&str) -> Answer + Send + Sync;

/// A server answering every request with `script(head)`, and the requests it saw.
pub(crate) struct Scripted {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Every request received, in order.
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    /// When each `POST` arrived, in order.
    fn post_times(&self) -> Vec<Instant> {
        self.seen
            .lock()
            .expect("log")
            .iter()
            .filter(|seen| seen.head.starts_with("POST "))
            .map(|seen| seen.at)
            .collect()
    }
}

pub(crate) async fn scripted(script: impl Fn(&str) -> Answer + Send + Sync + 'static) -> Scripted {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script: Arc<Script> = Arc::new(script);
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, script.clone(), log.clone()));
        }
    });
    Scripted { url, seen }
}

async fn serve(mut stream: TcpStream, script: Arc<Script>, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut buffer = Vec::new();
    while let Some((head, _body)) = read_request(&mut stream, &mut buffer).await {
        seen.lock().expect("log").push(Seen {
            at: Instant::now(),
            head: head.clone(),
        });
        let answer = script(&head);
        let response = format!(
            "HTTP/1.1 {}\r\ncontent-type: application/json\r\n{}content-length: {}\r\n\r\n{}",
            answer.status,
            answer.headers,
            answer.body.len(),
            answer.body
        );
        let close = head.to_ascii_lowercase().contains("connection: close");
        if stream.write_all(response.as_bytes()).await.is_err() || close {
            return;
        }
    }
}

/// The idempotency key of a request's head, if it has one.
fn key(head: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("idempotency-key")
            .then(|| value.trim().to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_that_may_have_applied_keeps_its_operation_unknown_whatever_the_retry_is_answered(
) {
    // Deposits of 5. Operation 0 is applied and answered 500 outcome-unknown; its retry is
    // answered 503 store-unavailable (that attempt wrote nothing). The others are applied.
    let balance = Arc::new(AtomicI64::new(0));
    let attempts_of_zero = AtomicU64::new(0);
    let server = scripted(move |head| {
        if head.starts_with("GET ") {
            return Answer::balance(balance.load(Ordering::SeqCst));
        }
        if key(head).is_some_and(|key| key.ends_with("-0")) {
            // The first attempt of operation 0 applies; later ones find the store down.
            if attempts_of_zero.fetch_add(1, Ordering::SeqCst) == 0 {
                balance.fetch_add(5, Ordering::SeqCst);
                return Answer::problem("500 Internal Server Error", ProblemType::OutcomeUnknown);
            }
            return Answer::problem("503 Service Unavailable", ProblemType::StoreUnavailable);
        }
        Answer::balance(balance.fetch_add(5, Ordering::SeqCst) + 5)
    })
    .await;

    let report = racebank_load::run(opts(&server.url, &["-n", "3", "-c", "1", "--retry", "3"]))
        .await
        .expect("run");

    let text = report.to_text();
    assert_eq!(report.summary.final_balance, Some(15), "{text}");
    assert_ne!(report.summary.verdict, Conclusion::Lost, "{text}");
    assert_eq!(report.summary.indeterminate.deposits, 1, "{text}");
    assert_eq!(report.summary.verdict, Conclusion::Consistent, "{text}");
    assert!(!text.contains("updates were lost"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_where_nothing_was_acknowledged_is_inconclusive_never_consistent() {
    // Every write is answered 503 store-unavailable (nothing written), or 500 with no word of
    // its outcome (perhaps written): either way the answers are no evidence.
    for (status, problem) in [
        ("503 Service Unavailable", ProblemType::StoreUnavailable),
        ("500 Internal Server Error", ProblemType::OutcomeUnknown),
    ] {
        let server = scripted(move |head| {
            if head.starts_with("GET ") {
                Answer::balance(0)
            } else {
                Answer::problem(status, problem)
            }
        })
        .await;

        let report = racebank_load::run(opts(&server.url, &["-n", "20", "-c", "2"]))
            .await
            .expect("run");

        let text = report.to_text();
        assert_eq!(
            report.summary.verdict,
            Conclusion::Inconclusive,
            "{status}: {text}"
        );
        assert!(!report.summary.consistent, "{status}: {text}");
        assert_eq!(report.exit_code(), EXIT_INCONCLUSIVE, "{status}: {text}");
        assert!(
            text.contains("INCONCLUSIVE: no evidence"),
            "{status}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_balances_with_the_right_final_balance_are_inconsistent_answers_not_lost_updates()
{
    // Two deposits of 5 both answered "balance 5"; the account holds 10 afterwards: no money is
    // missing, but the answers cannot both be true.
    let balance = Arc::new(AtomicI64::new(0));
    let server = scripted(move |head| {
        if head.starts_with("GET ") {
            Answer::balance(balance.load(Ordering::SeqCst))
        } else {
            balance.fetch_add(5, Ordering::SeqCst);
            Answer::balance(5)
        }
    })
    .await;

    let report = racebank_load::run(opts(&server.url, &["-n", "2", "-c", "1"]))
        .await
        .expect("run");

    let text = report.to_text();
    assert_eq!(report.summary.lost_amount, Some(0), "{text}");
    assert_eq!(report.summary.duplicates, Some(1), "{text}");
    assert_eq!(
        report.summary.verdict,
        Conclusion::InconsistentAnswers,
        "{text}"
    );
    assert_eq!(report.exit_code(), EXIT_INCONSISTENT_ANSWERS, "{text}");
    assert!(text.contains("NO: inconsistent answers"), "{text}");
    assert!(!text.contains("updates were lost"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_balance_no_account_can_hold_is_a_protocol_error_not_a_server_gone() {
    let reads = Arc::new(AtomicU64::new(0));
    let server = scripted(move |head| {
        if head.starts_with("GET /balance") {
            if reads.fetch_add(1, Ordering::SeqCst) == 0 {
                Answer::balance(0)
            } else {
                // Past any 64-bit balance.
                Answer::json(
                    "200 OK",
                    r#"{"balance":123456789012345678901234567890}"#.into(),
                )
            }
        } else if head.starts_with("GET ") {
            Answer::json("404 Not Found", "{}".into())
        } else {
            Answer::balance(5)
        }
    })
    .await;

    let report = racebank_load::run(opts(&server.url, &["-n", "1", "-c", "1"]))
        .await
        .expect("run");

    let text = report.to_text();
    assert_eq!(report.summary.verdict, Conclusion::ProtocolError, "{text}");
    assert_eq!(report.exit_code(), EXIT_PROTOCOL_ERROR, "{text}");
    assert!(text.contains("PROTOCOL ERROR"), "{text}");
    assert!(!text.contains("stopped answering"), "{text}");
}

/// A server whose first write is answered 503 with `Retry-After: 1` and every later one 200 with
/// a balance of 5; a balance read answers `balance`.
async fn first_write_answered_503_retry_after_1(balance: i64) -> Scripted {
    let writes = Arc::new(AtomicU64::new(0));
    scripted(move |head| {
        if head.starts_with("GET ") {
            return Answer::balance(balance);
        }
        if writes.fetch_add(1, Ordering::SeqCst) == 0 {
            Answer::problem("503 Service Unavailable", ProblemType::StoreUnavailable)
                .with_header("retry-after: 1")
        } else {
            Answer::balance(5)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_a_503_with_retry_after_waits_that_long() {
    // The first write is answered 503 Retry-After: 1, the next 200.
    let server = first_write_answered_503_retry_after_1(0).await;

    let report = racebank_load::run(opts(&server.url, &["-n", "1", "-c", "1", "--retry", "2"]))
        .await
        .expect("run");

    let text = report.to_text();
    let writes = server.post_times();
    assert_eq!(writes.len(), 2, "{text}");
    let waited = writes[1] - writes[0];
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    assert_eq!(report.summary.ok, 1, "{text}");
    assert_eq!(report.summary.retry_after_waits, 1, "{text}");
    assert!(text.contains("Retry-After"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retry_a_slot_answered_503_with_retry_after_pauses_before_its_next_request() {
    // One slot; the first write is answered 503 Retry-After: 1, the next 200.
    let server = first_write_answered_503_retry_after_1(5).await;

    let report = racebank_load::run(opts(&server.url, &["-n", "2", "-c", "1"]))
        .await
        .expect("run");

    let text = report.to_text();
    let writes = server.post_times();
    assert_eq!(writes.len(), 2, "{text}");
    let paused = writes[1] - writes[0];
    assert!(
        paused >= Duration::from_millis(900) && paused < Duration::from_secs(4),
        "{paused:?}"
    );
    assert_eq!(report.summary.retries, 0, "{text}");
    assert_eq!(report.summary.retry_after_waits, 1, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_longer_than_the_run_is_not_waited_past_its_deadline() {
    // Every write is answered 503 Retry-After: 3600; the run lasts 300 ms.
    let server = scripted(move |head| {
        if head.starts_with("GET ") {
            Answer::balance(0)
        } else {
            Answer::problem("503 Service Unavailable", ProblemType::StoreUnavailable)
                .with_header("retry-after: 3600")
        }
    })
    .await;
    let started = Instant::now();

    let report = racebank_load::run(opts(
        &server.url,
        &["-z", "300ms", "-c", "2", "--retry", "3"],
    ))
    .await
    .expect("run");

    // Capped at 5 s and never past the deadline: the run ends about when it should.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.summary.ok, 0, "{}", report.to_text());
}

/// `Location` pointing at `url` (another listener), as a header line.
fn location(url: &str, path: &str) -> String {
    format!("location: {url}{path}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirected_balance_read_is_not_followed_and_the_error_names_status_and_location() {
    // The balance read is redirected to another listener on loopback, which must hear nothing.
    let elsewhere = scripted(|_| Answer::balance(0)).await;
    let target = elsewhere.url.clone();
    let server = scripted(move |_| {
        Answer::json("302 Found", String::new()).with_header(&location(&target, "/balance"))
    })
    .await;

    let error = racebank_load::run(opts(&server.url, &["-n", "1", "-H", "X-Api-Key: s3cret"]))
        .await
        .expect_err("a redirect is no balance");

    let message = format!("{error:#}");
    assert!(message.contains("302"), "{message}");
    assert!(
        message.contains(&format!("{}/balance", elsewhere.url)),
        "{message}"
    );
    assert!(message.contains(&server.url), "{message}");
    assert!(elsewhere.seen.lock().expect("log").is_empty(), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_to_another_origin_is_never_followed_with_or_without_follow_redirects() {
    for follow in [false, true] {
        // The balance is answered here; the writes and /stats are sent elsewhere.
        let elsewhere = scripted(|_| Answer::balance(0)).await;
        let target = elsewhere.url.clone();
        let server = scripted(move |head| {
            if head.starts_with("GET /balance") {
                Answer::balance(0)
            } else {
                let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                Answer::json("307 Temporary Redirect", String::new())
                    .with_header(&location(&target, &path))
            }
        })
        .await;
        let mut args = vec!["-n", "4", "-c", "1", "-H", "X-Api-Key: s3cret"];
        if follow {
            args.push("--follow-redirects");
        }

        let report = racebank_load::run(opts(&server.url, &args))
            .await
            .expect("run");

        let text = report.to_text();
        assert!(
            elsewhere.seen.lock().expect("log").is_empty(),
            "follow {follow}: {text}"
        );
        assert_eq!(
            report.summary.status_codes.get("307"),
            Some(&4),
            "follow {follow}: {text}"
        );
        assert_eq!(report.summary.ok, 0, "follow {follow}: {text}");
        assert!(
            text.contains(&format!("307 to {}/deposit", elsewhere.url)),
            "follow {follow}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_follow_redirects_a_redirect_to_the_same_origin_is_followed() {
    // Every route moved under /v2 on the same server: 307 for the writes, 308 for the reads.
    let balance = Arc::new(AtomicI64::new(0));
    let server = scripted(move |head| {
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        match (head.starts_with("GET "), path.strip_prefix("/v2")) {
            (true, Some("/balance")) => Answer::balance(balance.load(Ordering::SeqCst)),
            (false, Some("/deposit")) => {
                Answer::balance(balance.fetch_add(5, Ordering::SeqCst) + 5)
            }
            (true, None) => Answer::json("308 Permanent Redirect", String::new())
                .with_header(&format!("location: /v2{path}")),
            (false, None) => Answer::json("307 Temporary Redirect", String::new())
                .with_header(&format!("location: /v2{path}")),
            _ => Answer::json("404 Not Found", "{}".into()),
        }
    })
    .await;

    let plain = racebank_load::run(opts(&server.url, &["-n", "4", "-c", "1"])).await;
    let followed = racebank_load::run(opts(
        &server.url,
        &["-n", "4", "-c", "1", "--follow-redirects"],
    ))
    .await
    .expect("run");

    assert!(plain.is_err(), "not followed by default");
    let text = followed.to_text();
    assert_eq!(followed.summary.ok, 4, "{text}");
    assert_eq!(followed.summary.verdict, Conclusion::Consistent, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_whose_answers_repeat_a_balance_with_the_money_right_says_inconsistent_answers() {
    // Every deposit is applied, every answer says "balance 5".
    let balance = Arc::new(AtomicI64::new(0));
    let server = scripted(move |head| {
        if head.starts_with("GET /balance") {
            Answer::balance(balance.load(Ordering::SeqCst))
        } else if head.starts_with("GET ") {
            Answer::json("404 Not Found", "{}".into())
        } else {
            balance.fetch_add(5, Ordering::SeqCst);
            Answer::balance(5)
        }
    })
    .await;
    let burst = racebank_load::Burst {
        load: racebank_load::Load::new(server.url.parse().expect("a URL")),
        size: 4,
        // One round: in a second, "balance 5" would be off the ladder (another client).
        rounds: 1,
    };

    let report = racebank_load::burst(burst).await.expect("burst");

    let text = report.to_text();
    assert_eq!(report.lost_rounds, 0, "{text}");
    assert_eq!(report.inconsistent_rounds, 1, "{text}");
    assert_eq!(report.exit_code(), EXIT_INCONSISTENT_ANSWERS, "{text}");
    assert!(text.contains("INCONSISTENT ANSWERS"), "{text}");
}

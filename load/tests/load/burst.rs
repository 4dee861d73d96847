//! `burst` against the real server: it finds the race in unguarded mode, and nothing in mutex mode.

use racebank_load::{Burst, Load, Render as _};

use crate::helpers::spawn_server;

fn bursts(url: &str, size: usize, rounds: u64) -> Burst {
    Burst {
        load: Load::new(url.parse().expect("a URL")),
        size,
        rounds,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_finds_lost_updates_in_most_rounds_of_an_unguarded_account_with_one_await() {
    // `--work yield`: one await point between read and write, no sleep to widen the window.
    let server = spawn_server("unguarded", "yield", 0).await;

    let report = racebank_load::burst(bursts(&server.url, 20, 20))
        .await
        .expect("burst");
    server.stop().await;

    // Measured: 20 of 20 rounds (debug build, 2 shared cores). A clear majority is asked for,
    // 14 of 20, leaving room for a loaded machine that serialises a few rounds.
    assert!(report.lost_rounds >= 14, "{}", report.to_text());
    assert_eq!(report.inconclusive_rounds, 0, "{}", report.to_text());
    let repro = report
        .reproduction
        .as_ref()
        .expect("a losing round to show");
    assert!(repro.round.lost_amount > 0);
    assert_eq!(repro.requests.values().sum::<u64>(), 20);
    assert!(repro.raw_request.starts_with("POST /deposit HTTP/1.1\r\n"));
    assert_eq!(report.exit_code(), racebank_load::EXIT_LOST);
    assert!(report.to_text().contains(&format!(
        "Lost updates in:     {} of 20 rounds",
        report.lost_rounds
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_finds_nothing_in_mutex_mode() {
    let server = spawn_server("mutex", "yield", 0).await;

    let report = racebank_load::burst(bursts(&server.url, 20, 10))
        .await
        .expect("burst");
    let stats = server.stop().await;

    assert_eq!(report.lost_rounds, 0, "{}", report.to_text());
    assert_eq!(report.consistent_rounds, 10);
    assert!(report.reproduction.is_none());
    assert_eq!(stats.balance, 20 * 10 * 5, "every deposit kept");
    assert_eq!(report.exit_code(), 0);
}

//! `report`: a run's `--history` drawn as a timeline, its colliding requests marked.

use crate::binary::racebank_load;
use crate::helpers::{opts, spawn_server};
use racebank_load::Render as _;

/// Bars whose class list has `word`.
fn bars_with(html: &str, word: &str) -> usize {
    html.split("<rect class=\"")
        .skip(1)
        .filter(|rest| {
            rest.split('"')
                .next()
                .is_some_and(|class| class.split(' ').any(|c| c == word))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_marks_every_request_whose_answer_repeated_a_balance() {
    // rendezvous:2 at concurrency 2: each pair reads the same balance, so each answers the same
    // new balance: 10 deposits, 5 pairs, 5 duplicate answers.
    let server = spawn_server("unguarded", "rendezvous:2", 0).await;
    let dir = std::env::temp_dir();
    let history = dir.join(format!("racebank-timeline-{}.jsonl", std::process::id()));
    let page = dir.join(format!("racebank-timeline-{}.html", std::process::id()));
    let history_text = history.to_string_lossy().to_string();
    let page_text = page.to_string_lossy().to_string();

    let report = racebank_load::run(opts(
        &server.url,
        &["-n", "10", "-c", "2", "--history", &history_text],
    ))
    .await
    .expect("run");
    server.stop().await;
    let output = racebank_load(&["report", &history_text, "-o", &page_text]).await;
    let html = std::fs::read_to_string(&page).unwrap_or_default();
    let _ = std::fs::remove_file(&history);
    let _ = std::fs::remove_file(&page);

    assert_eq!(report.summary.duplicates, Some(5), "{}", report.to_text());
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("10 colliding requests marked (5 answers repeated a balance)"),
        "{stdout}"
    );
    assert_eq!(bars_with(&html, "req"), 10, "one bar per request");
    assert_eq!(
        bars_with(&html, "collision"),
        10,
        "both requests of each pair"
    );
    assert_eq!(
        bars_with(&html, "repeat") as u64,
        report.summary.duplicates.unwrap(),
        "the repeats are the run's duplicates"
    );
    assert_eq!(
        html.matches("<title>").count(),
        11,
        "a tooltip per bar, and the page's"
    );
    assert!(html.contains("conn 1"), "a lane per connection");
    assert!(html.contains("Collisions (5 balances answered more than once)"));
    // Self-contained: nothing is fetched.
    for external in ["<script src", "<link", "http://", "https://", "@import"] {
        assert!(
            !html.contains(external) || external == "http://" && only_svg_namespace(&html),
            "{external}"
        );
    }
}

/// The only URL on the page is SVG's namespace, which is a name, not a fetch.
fn only_svg_namespace(html: &str) -> bool {
    html.matches("http://").count() == html.matches("http://www.w3.org/2000/svg").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_history_exits_2_with_one_line() {
    let path =
        std::env::temp_dir().join(format!("racebank-not-history-{}.txt", std::process::id()));
    std::fs::write(&path, "hello\n").unwrap();
    let path_text = path.to_string_lossy().to_string();

    let output = racebank_load(&["report", &path_text, "-o", "/dev/null"]).await;
    let _ = std::fs::remove_file(&path);

    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("line 1"), "{stderr}");
}

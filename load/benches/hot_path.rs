//! The per-request work of the hot loop that needs no socket: picking the operation, building the
//! request, and recording the answer (status, latency histogram, duplicate ladder, outcome).
//!
//! `cargo bench -p racebank-load --bench hot_path -- --quick` for a short run.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use hyper::StatusCode;
use racebank_load::bench::{Exchange, Ladder, Plan, Reading, Requests, Stats, Target};
use racebank_load::{AmountSpec, Api};

/// What a worker thread holds: the plan, the request parts, how answers are read.
struct Job {
    plan: Plan,
    requests: Requests,
    reading: Reading,
}

fn job(amounts: AmountSpec, withdraw_ratio: f64, ladder: Option<Ladder>) -> Job {
    // Resolving an IP literal needs no network; nothing is sent.
    let target = Target::new(&"http://127.0.0.1:3000".parse().expect("a URL")).expect("a target");
    let api = Api::default();
    Job {
        plan: Plan::new(1, withdraw_ratio, amounts),
        requests: Requests::new(&[target], &api, amounts).expect("request parts"),
        reading: Reading {
            pointer: api.pointer.clone(),
            ladder,
        },
    }
}

fn hot_path(c: &mut Criterion) {
    let fixed = AmountSpec { min: 5, max: 5 };
    let narrow = AmountSpec { min: 1, max: 100 };
    let wide = AmountSpec {
        min: 1,
        max: 1_000_000,
    };

    let plan = Plan::new(1, 0.3, narrow);
    let mut index = 0u64;
    c.bench_function("Plan::op", |b| {
        b.iter(|| {
            index = index.wrapping_add(1);
            black_box(plan.op(black_box(index)))
        });
    });

    for (name, amounts) in [
        ("narrow, prebuilt body", narrow),
        ("wide, formatted body", wide),
    ] {
        let job = job(amounts, 0.3, None);
        let mut index = 0u64;
        c.bench_function(&format!("Requests::build ({name})"), |b| {
            b.iter(|| {
                index = index.wrapping_add(1);
                black_box(job.requests.build(job.plan.op(index), 0, None))
            });
        });
    }

    // Deposits of 5 from 0, answered on the ladder: the duplicate check runs on every answer.
    let job = job(fixed, 0.0, Some(Ladder { base: 0, step: 5 }));
    let mut stats = Stats::new(true);
    let answers: Vec<Bytes> = (1..=4096)
        .map(|step| Bytes::from(format!(r#"{{"balance":{}}}"#, step * 5)))
        .collect();
    let mut step = 0usize;
    c.bench_function("record 200 {\"balance\":N} with the ladder", |b| {
        b.iter(|| {
            step = (step + 1) % answers.len();
            let op = job.plan.op(step as u64);
            let exchange = Exchange::Answer {
                status: StatusCode::OK,
                body: Some(answers[step].clone()),
                hint: None,
            };
            black_box(stats.record(
                &job.reading,
                op,
                exchange,
                Duration::from_micros(300),
                || u64::MAX / 2,
            ))
        });
    });

    let body = Bytes::from_static(br#"{"balance":12345}"#);
    let job = self::job(narrow, 0.3, None);
    let mut stats = Stats::new(false);
    let mut index = 0u64;
    c.bench_function("record 200 without the ladder", |b| {
        b.iter(|| {
            index = index.wrapping_add(1);
            let exchange = Exchange::Answer {
                status: StatusCode::OK,
                body: Some(body.clone()),
                hint: None,
            };
            black_box(stats.record(
                &job.reading,
                job.plan.op(index),
                exchange,
                Duration::from_micros(250 + index % 500),
                || u64::MAX / 2,
            ))
        });
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);

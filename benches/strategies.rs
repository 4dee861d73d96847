//! The account strategies under contention, without HTTP: what each guard costs per update.
//!
//! 64 tasks on a two-thread runtime each apply 16 deposits with `--work none` (or `yield`), so the
//! guard, not the work, is what is measured. `cargo bench --bench strategies`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use racebank::{Account, AccountConfig, StoreKind, WorkSpec};
use racebank::{Amount, Op};

const TASKS: usize = 64;
const UPDATES_PER_TASK: usize = 16;

fn contended_deposits(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("contended_deposits");
    group.throughput(Throughput::Elements((TASKS * UPDATES_PER_TASK) as u64));
    for work in [WorkSpec::None, WorkSpec::Yield] {
        for mode in StoreKind::Memory.showcase() {
            let account = runtime
                .block_on(Account::open(&AccountConfig::memory(mode, work)))
                .expect("the memory store always opens");
            let account = Arc::new(account);
            let deposit = Op::Deposit(Amount::new(1).unwrap());
            group.bench_with_input(
                BenchmarkId::new(work.to_string(), mode),
                &account,
                |b, account| {
                    b.to_async(&runtime).iter(|| async {
                        let tasks: Vec<_> = (0..TASKS)
                            .map(|_| {
                                let account = account.clone();
                                tokio::spawn(async move {
                                    for _ in 0..UPDATES_PER_TASK {
                                        let _ = account.apply(deposit).await;
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.unwrap();
                        }
                    });
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, contended_deposits);
criterion_main!(benches);

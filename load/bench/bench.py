#!/usr/bin/env python3
"""racebank's benchmarks, side by side in one run: `python3 load/bench/bench.py [SECTION ...]`.

Sections (all by default):
  strategies  req/s, p99 and lost updates per mode, for work none, yield and 1ms (racebank-load, c=64)
  clients     racebank-load vs oha vs wrk on POST /deposit, mutex mode, work none, c=64
  server      racebank mutex vs unguarded vs a bare axum yardstick, read by wrk
  memory      racebank-load's peak RSS for 100,000 and 1,000,000 requests
  burst       how often `burst` finds lost updates, against plain runs of the same requests at the
              same concurrency (unguarded, work none and yield)
  redis       --store redis: each mode's req/s and p99 (work none and 1ms), and atomic against
              redis-benchmark running the same Lua script (EVALSHA) at the same client count
  postgres    the PostgreSQL store: atomic through racebank vs pgbench's bare UPDATE, and every mode
              with work none and 1ms (needs PostgreSQL at DATABASE_URL and pgbench)
  bank        1000 accounts: account-locks vs the bank-wide mutex in memory (c=64, work 1ms), and
              PostgreSQL atomic transfers vs pgbench running the same transaction (racebank's own
              statements) and a bare transfer (16 clients)
  bank-pg     only the PostgreSQL part of `bank`
  pg-atomic   issue 19's target: racebank --store postgres --mode atomic --pool-size 16 read by
              racebank-load -c 16 deposits, against pgbench -n -c 16 -j 2 running one bare conditional
              UPDATE (simple protocol), 3 alternating rounds of 4 s, in a scratch database dropped after
  bank-rate   `bank`'s request rate against `run`'s on one server (racebank --accounts 8, memory,
              work none, c=64), alternated: transfers only (--reads 0) vs deposits, and the
              Jepsen mix (half reads) for information
  checker     the bank checker's time per operation and memory, on histories of 10k, 100k and 1M
              operations held in memory (load/examples/bank_checker.rs, one process each)

Every server runs on 127.0.0.1 and every run is bounded in time or count. Competing tools are
alternated round by round and their medians compared, because the machine is shared and noisy: only
the ratios measured in one run mean anything. oha installs with `cargo install oha`, wrk with
`apt-get install wrk`; a section that needs a missing tool says so and skips it.

Options: --rounds N (default 5; pg-atomic 3), --seconds S per measurement (default 5; pg-atomic 4), --quick (2 rounds of 2 s),
--burst-rounds K (default 50), --sittings N (bank-pg only: measure N times), --pin-postgres (bank-pg
only: every sitting also with the local PostgreSQL's processes on the last core and the load tools
and racebank on the others, restored after, and a summary of the layouts; needs root). Binaries are
taken from $CARGO_TARGET_DIR/release when it is set.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from contextlib import ExitStack, contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
RELEASE = os.path.join(os.path.abspath(TARGET_DIR), "release")
RACEBANK = os.path.join(RELEASE, "racebank")
LOAD = os.path.join(RELEASE, "racebank-load")
YARDSTICK = os.path.join(RELEASE, "examples", "yardstick")
BODY = '{"amount": 1}'
CONCURRENCY = 64
MODES = ["unguarded", "mutex", "semaphore:4", "optimistic", "atomic"]


def log(message):
    print(message, file=sys.stderr, flush=True)


def build():
    log("building release binaries ...")
    subprocess.run(
        ["cargo", "build", "--release", "--workspace", "--bins", "--example", "yardstick"],
        cwd=ROOT,
        check=True,
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url, process):
    deadline = time.time() + 10
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early: {process.args}")
        try:
            with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not start: {process.args}")


@contextmanager
def server(command):
    """Starts a server on a free loopback port and yields its base URL."""
    with server_process(command) as (url, _):
        yield url


@contextmanager
def server_process(command):
    """Starts a server on a free loopback port and yields its base URL and its process."""
    port = free_port()
    args = [arg.replace("{port}", str(port)) for arg in command]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def racebank(mode, work):
    return [RACEBANK, "--mode", mode, "--work", work, "--addr", "127.0.0.1:{port}"]


def yardstick():
    return [YARDSTICK, "127.0.0.1:{port}"]


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


# --- the load tools --------------------------------------------------------------------------

def run_racebank_load(url, seconds, extra=()):
    out = subprocess.run(
        [LOAD, "--url", url, "-c", str(CONCURRENCY), "-z", f"{seconds}s", "--json", "--no-progress", *extra],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    if out.returncode not in (0, 1):
        raise RuntimeError(f"racebank-load failed ({out.returncode}): {out.stderr.strip()}")
    report = json.loads(out.stdout)
    return report["rps"], report["latency_ms"]["p99"], report


def run_oha(url, seconds):
    out = subprocess.run(
        ["oha", "-c", str(CONCURRENCY), "-z", f"{seconds}s", "-m", "POST", "-T", "application/json",
         "-d", BODY, "--no-tui", "--output-format", "json", f"{url}/deposit"],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    report = json.loads(out.stdout)
    p99 = report.get("latencyPercentiles", {}).get("p99")
    return report["summary"]["requestsPerSec"], (p99 or 0) * 1000, report


def run_wrk(url, seconds, threads=2):
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            f"wrk.body = '{BODY}'\n"
            'wrk.headers["Content-Type"] = "application/json"\n'
        )
    try:
        out = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{CONCURRENCY}", f"-d{seconds}s", "--latency", "-s", script.name,
             f"{url}/deposit"],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
        ).stdout
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    return rps, float(p99.group(1)) * scale[p99.group(2)] if p99 else 0.0, out


def have(tool):
    if shutil.which(tool):
        return True
    hint = {"oha": "cargo install oha", "wrk": "apt-get install wrk"}[tool]
    log(f"  {tool} is not installed ({hint}): skipping it")
    return False


def alternate(contenders, rounds):
    """Runs each contender once per round, in turn, and returns {name: [rps, ...]}."""
    results = {name: [] for name, _ in contenders}
    p99s = {name: [] for name, _ in contenders}
    for round_ in range(rounds):
        for name, measure in contenders:
            rps, p99 = measure()[:2]
            results[name].append(rps)
            p99s[name].append(p99)
            log(f"  round {round_ + 1}: {name:<28} {rps:>10.0f} req/s  p99 {p99:.2f} ms")
    return results, p99s


def table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# --- sections ----------------------------------------------------------------------------------

def section_strategies(args):
    rows = []
    for work in ["none", "yield", "1ms"]:
        for mode in MODES:
            with server(racebank(mode, work)) as url:
                rps, p99, report = run_racebank_load(url, args.seconds)
                stats = get_json(f"{url}/stats")
            rows.append([work, mode, f"{rps:,.0f}", f"{p99:.2f}", report["lost_amount"],
                         stats["lost_updates"], stats["retries"], "yes" if report["consistent"] else "no"])
            log(f"  {work:>5} {mode:<12} {rps:>10,.0f} req/s  p99 {p99:.2f} ms  lost {report['lost_amount']}")
    return "### Strategies (racebank-load, c=64, deposits of 5)\n\n" + table(
        ["work", "mode", "req/s", "p99 ms", "lost amount", "lost updates (server)", "retries", "consistent"], rows)


def section_clients(args):
    contenders = [("racebank-load", None)]
    if have("oha"):
        contenders.append(("oha", None))
    if have("wrk"):
        contenders.append(("wrk -t2", None))
    with server(racebank("mutex", "none")) as url:
        measures = {
            "racebank-load": lambda: run_racebank_load(url, args.seconds),
            "oha": lambda: run_oha(url, args.seconds),
            "wrk -t2": lambda: run_wrk(url, args.seconds),
        }
        results, p99s = alternate([(name, measures[name]) for name, _ in contenders], args.rounds)
    ours = statistics.median(results["racebank-load"])
    rows = []
    for name in results:
        median = statistics.median(results[name])
        rows.append([name, f"{median:,.0f}", f"{statistics.median(p99s[name]):.2f}",
                     f"{ours / median:.2f}x", ", ".join(f"{r:,.0f}" for r in results[name])])
    return (f"### Load generators on POST /deposit (mutex, work none, c={CONCURRENCY}, "
            f"{args.rounds} alternating rounds of {args.seconds} s, medians)\n\n"
            + table(["client", "req/s", "p99 ms", "racebank-load / this", "rounds"], rows))


def section_server(args):
    if not have("wrk"):
        return "### Server\n\nskipped: wrk is not installed"
    servers = [("racebank mutex", racebank("mutex", "none")),
               ("racebank unguarded", racebank("unguarded", "none")),
               ("yardstick (bare axum + atomic)", yardstick())]
    results = {name: [] for name, _ in servers}
    cpu = {name: [] for name, _ in servers}
    for round_ in range(args.rounds):
        for name, command in servers:
            with server_process(command) as (url, process):
                before = cpu_seconds(process.pid)
                rps, _, out = run_wrk(url, args.seconds)
                used = cpu_seconds(process.pid) - before
            requests = int(re.search(r"(\d+) requests in", out).group(1))
            results[name].append(rps)
            cpu[name].append(used / requests * 1e6)
            log(f"  round {round_ + 1}: {name:<32} {rps:>10,.0f} req/s  {cpu[name][-1]:.2f} µs CPU/request")
    medians = {name: statistics.median(values) for name, values in results.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    mutex = medians["racebank mutex"]
    rows = [[name, f"{medians[name]:,.0f}", f"{mutex / medians[name]:.3f}x", f"{cpu_medians[name]:.2f}",
             ", ".join(f"{r:,.0f}" for r in results[name])] for name in medians]
    return (f"### Server, read by wrk -t2 -c{CONCURRENCY} (work none, {args.rounds} alternating rounds "
            f"of {args.seconds} s, medians)\n\n"
            + table(["server", "req/s", "mutex / this", "server CPU µs / request", "rounds"], rows)
            + "\n\nCPU per request is the server process's user + system time over the requests wrk "
              "counted: what each request costs the server, whatever else the machine is doing.")


def machine_busy_seconds():
    """The CPU time every core has spent on anything but idling so far, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds():
    """The CPU time this script's finished children (the load tools) have used so far."""
    times = os.times()
    return times.children_user + times.children_system


def cpu_seconds(pid):
    """The user + system CPU time a process has used so far, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_kib(command):
    out = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True, text=True, timeout=600)
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    if not match:
        raise RuntimeError(f"no peak RSS in /usr/bin/time output: {out.stderr[-500:]}")
    return int(match.group(1))


def section_memory(args):
    if not os.path.exists("/usr/bin/time"):
        return "### Memory\n\nskipped: /usr/bin/time is not installed (apt-get install time)"
    rows = []
    with server(racebank("atomic", "none")) as url:
        for requests in [100_000, 1_000_000]:
            rss = peak_rss_kib([LOAD, "--url", url, "-c", str(CONCURRENCY), "-n", str(requests),
                                "--json", "--no-progress"])
            rows.append([f"{requests:,}", f"{rss / 1024:.1f}"])
            log(f"  {requests:>9,} requests: peak RSS {rss / 1024:.1f} MiB")
    ratio = float(rows[1][1]) / float(rows[0][1])
    return ("### racebank-load peak memory (atomic mode, work none, c=64)\n\n"
            + table(["requests", "peak RSS MiB"], rows) + f"\n\n1,000,000 / 100,000: {ratio:.3f}x")


BURST_SIZE = 20


def lost_in_bursts(url, rounds):
    out = subprocess.run([LOAD, "burst", "--url", url, "-n", str(BURST_SIZE), "--rounds", str(rounds), "--json"],
                         capture_output=True, text=True, timeout=600)
    if out.returncode not in (0, 1):
        raise RuntimeError(f"racebank-load burst failed ({out.returncode}): {out.stderr.strip()}")
    report = json.loads(out.stdout)
    return report["lost_rounds"], report["release_spread_us"]["median"]


def lost_in_plain_runs(url, rounds):
    lost = 0
    for _ in range(rounds):
        out = subprocess.run([LOAD, "--url", url, "-n", str(BURST_SIZE), "-c", str(BURST_SIZE), "--json",
                              "--no-progress"], capture_output=True, text=True, timeout=120)
        if out.returncode not in (0, 1):
            raise RuntimeError(f"racebank-load failed ({out.returncode}): {out.stderr.strip()}")
        lost += json.loads(out.stdout)["verdict"] == "lost"
    return lost


def burst_servers():
    """(label, server command) pairs the burst is measured against: in memory with no window and
    with one await point, and on PostgreSQL with no extra work, where the window is one database
    round trip, as in a real handler."""
    servers = [(f"unguarded, work {work}", racebank("unguarded", work)) for work in ["none", "yield"]]
    if shutil.which("pg_isready"):
        servers.append(("postgres unguarded, work none",
                        racebank_pg("unguarded", "none", pg_account("burst"), pool=BURST_SIZE)))
    return servers


def section_burst(args):
    rows = []
    for label, command in burst_servers():
        with server(command) as url:
            burst_lost, spread = lost_in_bursts(url, args.burst_rounds)
            plain_lost = lost_in_plain_runs(url, args.burst_rounds)
        rows.append([label, f"{burst_lost} of {args.burst_rounds}", f"{plain_lost} of {args.burst_rounds}", spread])
        log(f"  {label:<24} burst {burst_lost}/{args.burst_rounds}, plain {plain_lost}/{args.burst_rounds}")
    return (f"### Burst against plain runs ({args.burst_rounds} rounds of {BURST_SIZE} deposits; a plain round is "
            f"`-n {BURST_SIZE} -c {BURST_SIZE}`)\n\n"
            + table(["server", "burst: rounds with lost updates", "plain: runs with lost updates",
                     "median release spread µs"], rows))




# --- redis --------------------------------------------------------------------------------------

REDIS_MODES = ["unguarded", "mutex", "optimistic", "atomic", "lease", "fenced", "fenced-write-only"]
REDIS_LEASE = "100ms"
SCRIPTS_RS = os.path.join(ROOT, "src", "store", "redis", "scripts.rs")


def redis_cli(*args):
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", "6379", *args],
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def racebank_redis(mode, work, account):
    return [RACEBANK, "--store", "redis", "--account", account, "--mode", mode, "--work", work,
            "--lease", REDIS_LEASE, "--addr", "127.0.0.1:{port}"]


def redis_account_keys(account):
    return [f"racebank:{{{account}}}:{name}" for name in
            ["balance", "ledger", "lock", "fence", "seen", "writes", "generation", "halted"]]


def atomic_script_sha():
    """The SHA1 of the atomic mode's script as the server sends it, from its source: the prelude,
    the guard against a Redis that lost writes, the script body and the guard's end."""
    source = open(SCRIPTS_RS).read()

    def const(name):
        return re.search(rf'const {name}: &str = r"(.*?)";', source, re.S).group(1)

    script = const("PRELUDE") + const("GUARD") + const("ATOMIC") + const("GUARD_END")
    return hashlib.sha1(script.encode()).hexdigest()


def reset_account(url):
    request = urllib.request.Request(f"{url}/reset", data=b'{"balance": 0}', method="POST",
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=5):
        pass


def run_redis_benchmark(sha, account, requests):
    """redis-benchmark -c 64 running EVALSHA of the atomic script: a deposit of 1, as racebank sends."""
    balance, ledger, _, _, _, writes, generation, halted = redis_account_keys(account)
    # The guard's keys come first, then the script's; its first two arguments are the highest
    # generation and write count this client has seen (none: it never refuses).
    out = subprocess.run(
        ["redis-benchmark", "-h", "127.0.0.1", "-p", "6379", "-c", str(CONCURRENCY), "-n", str(requests),
         "--csv", "EVALSHA", sha, "5", writes, generation, halted, balance, ledger, "0", "0", "deposit",
         "1"],
        capture_output=True, text=True, timeout=600,
    ).stdout
    row = out.strip().splitlines()[-1].replace('"', "").rsplit(",", 7)
    return float(row[1]), float(row[6]), out


def section_redis(args):
    for tool in ["redis-cli", "redis-benchmark"]:
        if not shutil.which(tool):
            return f"### Redis\n\nskipped: {tool} is not installed (apt-get install redis-tools)"
    if redis_cli("ping") != "PONG":
        return "### Redis\n\nskipped: Redis does not answer on 127.0.0.1:6379 (see .ci/run to start it)"
    used = []
    rows = []
    for work in ["none", "1ms"]:
        for mode in REDIS_MODES:
            account = f"bench-{mode}-{work}"
            used.append(account)
            with server(racebank_redis(mode, work, account)) as url:
                reset_account(url)
                rps, p99, report = run_racebank_load(url, args.seconds)
                stats = get_json(f"{url}/stats")
            rows.append([work, mode, f"{rps:,.0f}", f"{p99:.2f}", report["lost_amount"], stats["lost_updates"],
                         stats["retries"], report["errors"]["status"], "yes" if report["consistent"] else "no"])
            log(f"  {work:>5} {mode:<18} {rps:>10,.0f} req/s  p99 {p99:.2f} ms  lost {report['lost_amount']}"
                f"  503s {report['errors']['status']}")
    modes = (f"### Redis store, per mode (racebank-load, c={CONCURRENCY}, deposits of 5, {args.seconds} s each, "
             f"--lease {REDIS_LEASE}, 1 replica)\n\n"
             + table(["work", "mode", "req/s", "p99 ms", "lost amount", "lost updates (server)", "retries",
                      "other statuses (503)", "consistent"], rows))

    # atomic against redis-benchmark running the same script at the same client count, alternated.
    sha = atomic_script_sha()
    racebank_account, benchmark_account = "bench-atomic-vs", "bench-redis-benchmark"
    used += [racebank_account, benchmark_account]
    redis_cli("set", redis_account_keys(benchmark_account)[0], "0")
    with server(racebank_redis("atomic", "none", racebank_account)) as url:
        reset_account(url)
        # racebank has now run the script once, so Redis holds it under the SHA computed here:
        # proof that both sides run the very same script.
        subprocess.run([LOAD, "--url", url, "-n", "1", "--json", "--no-progress"], capture_output=True, timeout=60)
        if redis_cli("script", "exists", sha) != "1":
            raise RuntimeError(f"Redis does not hold the atomic script under {sha}: scripts.rs parsed wrong?")
        requests = None
        contenders = [("racebank atomic (HTTP)", lambda: run_racebank_load(url, args.seconds)),
                      ("redis-benchmark EVALSHA", lambda: run_redis_benchmark(sha, benchmark_account, requests))]
        # Size redis-benchmark's fixed request count to run about as long as racebank-load does.
        calibration = run_redis_benchmark(sha, benchmark_account, 20_000)[0]
        requests = int(calibration * args.seconds)
        results, p99s = alternate(contenders, args.rounds)
    for account in used:
        redis_cli("del", *redis_account_keys(account))
    ours = statistics.median(results["racebank atomic (HTTP)"])
    theirs = statistics.median(results["redis-benchmark EVALSHA"])
    rows = [[name, f"{statistics.median(results[name]):,.0f}", f"{statistics.median(p99s[name]):.2f}",
             ", ".join(f"{r:,.0f}" for r in results[name])] for name in results]
    versus = (f"### Redis atomic vs redis-benchmark, the same script (EVALSHA {sha[:12]}...), c={CONCURRENCY}, "
              f"{args.rounds} alternating rounds of about {args.seconds} s, medians\n\n"
              + table(["client", "req/s", "p99 ms", "rounds"], rows)
              + f"\n\nracebank atomic / redis-benchmark: {ours / theirs:.2f}x (target: at least 0.6x)")
    return modes + "\n\n" + versus




# --- postgres: the PostgreSQL store ------------------------------------------------------------
# Self-contained: its own helpers, prefixed pg_. Three replicas are three racebank processes on one
# account, loaded through racebank-load's multi-URL mode (round robin).

PG_URL = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_MODES = ["unguarded", "mutex", "semaphore:4", "for-update", "advisory", "optimistic",
            "repeatable-read", "serializable", "atomic"]
# Modes that hold a lock (in-process or in the database) across the work: one section at a time.
PG_LOCKING = {"mutex", "for-update", "advisory"}
# Clients on both sides of the comparison: racebank-load's concurrency and racebank's pool size,
# pgbench's connections. Under PostgreSQL's 100 connections with room for everything else.
PG_CLIENTS = 32


def pg_account(name):
    return f"bench-{name}-{os.getpid()}".replace(":", "-")


def racebank_pg(mode, work, account, pool=PG_CLIENTS):
    return [RACEBANK, "--store", "postgres", "--database-url", PG_URL, "--account", account,
            "--mode", mode, "--work", work, "--pool-size", str(pool), "--addr", "127.0.0.1:{port}"]


def pg_run_load(urls, seconds):
    """racebank-load with PG_CLIENTS in flight over `urls` (one URL or a list of replicas);
    returns (req/s, p99 ms, report)."""
    urls = [urls] if isinstance(urls, str) else urls
    out = subprocess.run(
        [LOAD, *[arg for url in urls for arg in ("--url", url)], "-c", str(PG_CLIENTS),
         "-z", f"{seconds}s", "--json", "--no-progress"],
        capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode not in (0, 1):
        raise RuntimeError(f"racebank-load failed ({out.returncode}): {out.stderr.strip()}")
    report = json.loads(out.stdout)
    return report["rps"], report["latency_ms"]["p99"], report


def pgbench_env(options=None):
    """pgbench's environment: no TLS, as racebank's own connections (tokio-postgres with `NoTls`),
    so that both sides pay for the same transport. libpq's default (`sslmode=prefer`) takes TLS
    wherever the server offers it, and the machines' PostgreSQL does: the encryption then costs
    pgbench's side alone. `options`, if any, go to the server (PGOPTIONS)."""
    env = dict(os.environ, PGSSLMODE="disable")
    if options:
        env["PGOPTIONS"] = options
    return env


def pg_connection_args(database=None):
    url = urllib.parse.urlparse(PG_URL)
    return ["-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432),
            "-U", url.username or "postgres", database or (url.path or "/postgres").lstrip("/")]


def pg_psql(sql, database=None):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql, *pg_connection_args(database)],
                   check=True, capture_output=True, text=True, timeout=60)


def run_pgbench(script, seconds, clients=PG_CLIENTS, database=None, options=None):
    """pgbench with a custom script, prepared statements, no vacuum, on `database` (PG_URL's by
    default) with the server `options` (PGOPTIONS); returns (tps, mean latency ms)."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as file:
        file.write(script)
    try:
        out = subprocess.run(
            ["pgbench", "-n", "-M", "prepared", "-f", file.name, "-c", str(clients), "-j", "2",
             "-T", str(seconds), *pg_connection_args(database)],
            capture_output=True, text=True, timeout=seconds + 60, env=pgbench_env(options))
    finally:
        os.unlink(file.name)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", out.stdout)
    if not tps:
        raise RuntimeError(f"pgbench failed: {out.stdout[-300:]} {out.stderr[-500:]}")
    return float(tps.group(1)), float(latency.group(1)) if latency else 0.0


def pgbench_scripts(account):
    """pgbench's side: the bare single-row UPDATE, and the same UPDATE with racebank's ledger entry
    in the same statement (a copy of APPLY in src/store/postgres/atomic.rs: the entry is added to
    counters in the account row, the answer kept for a key is skipped without one)."""
    bare = f"UPDATE racebank.accounts SET balance = balance + 1 WHERE id = '{account}';\n"
    ledger = ("WITH written AS (UPDATE racebank.accounts SET balance = balance + 1 - 0, "
              "replaced = balance, version = version + 1, deposit_count = deposit_count + (1 > 0)::int, "
              "deposit_sum = deposit_sum + 1, withdrawal_count = withdrawal_count + (0 > 0)::int, "
              "withdrawal_sum = withdrawal_sum + 0, retries = retries + 0 "
              f"WHERE id = '{account}' AND balance >= 0 AND balance <= 9223372036854775807 - 1 "
              "RETURNING balance), "
              "remembered AS (INSERT INTO racebank.idempotency (account, key, kind, amount, status, balance, "
              f"expires_at) SELECT '{account}', NULL::text, 'deposit', 1, 200, balance, now() FROM written "
              "WHERE NULL::text IS NOT NULL) "
              "SELECT w.balance, CASE WHEN w.balance IS NULL THEN "
              f"(SELECT balance FROM racebank.accounts WHERE id = '{account}') END "
              "FROM (SELECT (SELECT balance FROM written) AS balance) w;\n")
    return bare, ledger


def section_postgres(args):
    missing = [tool for tool in ("pgbench", "psql") if not shutil.which(tool)]
    if missing:
        return f"### PostgreSQL\n\nskipped: {', '.join(missing)} not installed (apt-get install postgresql-client)"
    out = ["### PostgreSQL store (1 replica, racebank-load and pgbench both with "
           f"{PG_CLIENTS} clients; racebank's pool {PG_CLIENTS} connections)"]

    # atomic through racebank vs pgbench on the same row shape, alternated round by round.
    bench_account = pg_account("pgbench")
    with server(racebank_pg("atomic", "none", pg_account("atomic"))) as url:
        # racebank has migrated the schema by now; pgbench's own row sits beside racebank's.
        pg_psql(f"INSERT INTO racebank.accounts (id, balance, initial_balance) "
                f"VALUES ('{bench_account}', 0, 0) ON CONFLICT (id) DO NOTHING")
        bare, ledger = pgbench_scripts(bench_account)
        contenders = [
            ("racebank atomic (HTTP)",
             lambda: pg_run_load(url, args.seconds)[:2]),
            ("pgbench bare UPDATE", lambda: run_pgbench(bare, args.seconds)),
            ("pgbench UPDATE + ledger", lambda: run_pgbench(ledger, args.seconds)),
        ]
        results, latencies = alternate(contenders, args.rounds)
    medians = {name: statistics.median(values) for name, values in results.items()}
    bare_tps = medians["pgbench bare UPDATE"]
    rows = [[name, f"{medians[name]:,.0f}", f"{medians[name] / bare_tps:.2f}x",
             f"{statistics.median(latencies[name]):.2f}", ", ".join(f"{r:,.0f}" for r in results[name])]
            for name in medians]
    out.append(f"#### atomic vs pgbench ({args.rounds} alternating rounds of {args.seconds} s, medians)\n\n"
               + table(["contender", "tx/s", "/ pgbench bare", "latency ms (racebank p99, pgbench mean)",
                        "rounds"], rows)
               + f"\n\nThe ledger's cost in SQL: pgbench UPDATE + ledger / bare = "
                 f"{medians['pgbench UPDATE + ledger'] / bare_tps:.2f}x")

    # Every mode, work none and 1ms. A mode that holds a lock across the work runs one section at
    # a time, each at least the work plus one commit on the row: its ceiling is about
    # 1 / (work + commit), the commit timed by pgbench's bare UPDATE above (1 / its tx/s).
    commit_s = 1 / bare_tps
    rows = []
    for replicas in [1, 3]:
        for work in ["none", "1ms"]:
            for mode in PG_MODES:
                account = pg_account(f"{mode}-{work}-{replicas}")
                # The same connections in all: three replicas share PG_CLIENTS between them.
                pool = PG_CLIENTS // replicas
                with ExitStack() as stack:
                    urls = [stack.enter_context(server(racebank_pg(mode, work, account, pool)))
                            for _ in range(replicas)]
                    rps, p99, report = pg_run_load(urls, args.seconds)
                    stats = get_json(f"{urls[0]}/stats")
                unavailable = report["status_codes"].get("503", 0)
                ceiling = ""
                if work == "1ms" and (mode in PG_LOCKING and not (mode == "mutex" and replicas > 1)):
                    limit = 1 / (0.001 + commit_s)
                    ceiling = f"{limit:,.0f} ({rps / limit:.0%})"
                rows.append([replicas, work, mode, f"{rps:,.0f}", f"{p99:.2f}", stats["lost_updates"],
                             stats["retries"], stats["retries_exhausted"], unavailable, ceiling,
                             "yes" if report["consistent"] else "no"])
                log(f"  {replicas} {work:>5} {mode:<16} {rps:>9,.0f} req/s  p99 {p99:.2f} ms  "
                    f"lost {stats['lost_updates']}  retries {stats['retries']}  503 {unavailable}")
    out.append(f"#### Every mode, 1 and 3 replicas ({PG_CLIENTS} connections in all: "
               f"{PG_CLIENTS // 3} per replica with 3), {args.seconds} s each, deposits of 5; commit = "
               f"{commit_s * 1000:.2f} ms (1 / pgbench bare)\n\n"
               + table(["replicas", "work", "mode", "req/s", "p99 ms", "lost updates", "retries", "gave up",
                        "503 answers", "ceiling 1/(work + commit) (reached)",
                        "consistent"], rows))
    return "\n\n".join(out)


# --- the bank ----------------------------------------------------------------------------------

BANK_ACCOUNTS = 1000
BANK_OPENING = 1_000_000


def run_bank_load(url, seconds, clients, accounts=BANK_ACCOUNTS):
    """racebank-load bank, transfers only, at the server's opening balances; returns
    (transfers/s, p99 ms, report)."""
    out = subprocess.run(
        [LOAD, "bank", url, "--accounts", str(accounts), "--server-openings", "--reads", "0",
         "-c", str(clients), "-z", f"{seconds}s", "--json", "--no-progress"],
        capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise RuntimeError(f"racebank-load bank failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    report = json.loads(out.stdout)
    return report["rps"], report["latency_ms"]["p99"], report


# --- bank: `racebank-load bank` against `run` on the same server --------------------------------

def run_bank(url, seconds, extra=()):
    out = subprocess.run(
        [LOAD, "bank", url, "-c", str(CONCURRENCY), "-z", f"{seconds}s", "--json", "--no-progress", *extra],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    if out.returncode not in (0, 1, 6):
        raise RuntimeError(f"racebank-load bank failed ({out.returncode}): {out.stderr.strip()}")
    report = json.loads(out.stdout)
    return report["rps"], report["latency_ms"]["p99"], report


def racebank_bank(mode, work, extra=()):
    return [RACEBANK, "--accounts", str(BANK_ACCOUNTS), "--initial-balance", str(BANK_OPENING),
            "--mode", mode, "--work", work, *extra, "--addr", "127.0.0.1:{port}"]


def section_bank(args):
    out = [f"### The bank ({BANK_ACCOUNTS} accounts, transfers of 1..5 between random accounts, "
           f"racebank-load bank --reads 0; {args.rounds} alternating rounds of {args.seconds} s, medians)"]
    # Fine-grained locks against the bank-wide mutex, in memory, with 1 ms of work in the window.
    servers = [("account-locks (id order)", racebank_bank("account-locks", "1ms")),
               ("mutex (bank-wide)", racebank_bank("mutex", "1ms"))]
    results = {name: [] for name, _ in servers}
    verdicts = {name: set() for name, _ in servers}
    for round_ in range(args.rounds):
        for name, command in servers:
            with server(command) as url:
                rps, _, report = run_bank_load(url, args.seconds, CONCURRENCY)
            results[name].append(rps)
            verdicts[name].add(report["verdict"])
            log(f"  round {round_ + 1}: {name:<26} {rps:>9,.0f} transfers/s  {report['verdict']}")
    medians = {name: statistics.median(values) for name, values in results.items()}
    mutex = medians["mutex (bank-wide)"]
    rows = [[name, f"{medians[name]:,.0f}", f"{medians[name] / mutex:.1f}x", ", ".join(sorted(verdicts[name])),
             ", ".join(f"{r:,.0f}" for r in results[name])] for name in medians]
    out.append(f"#### Memory, c={CONCURRENCY}, --work 1ms\n\n"
               + table(["mode", "transfers/s", "/ mutex", "verdicts", "rounds"], rows))
    if shutil.which("pgbench") and shutil.which("psql"):
        out += [bank_postgres(args)[0], BANK_PG_LEGEND]
    return "\n\n".join(out)


# pgbench's side of the bank: `to` never equals `from` (racebank answers 422 to that, and
# racebank-load never sends it).
BANK_PGBENCH_PICK = (f"\\set from random(1, {BANK_ACCOUNTS})\n"
                     f"\\set to 1 + (:from + random(0, {BANK_ACCOUNTS - 2})) % {BANK_ACCOUNTS}\n"
                     "\\set amount random(1, 5)\n")

# racebank's two atomic transfer statements for accounts outside any household (a copy of
# DEBIT_FIRST and CREDIT_FIRST in src/store/postgres/bank/atomic.rs with its entry!), `{bank}` for
# the bank's key, pgbench's variables for the rest: the one whose first write is the smaller id
# runs, as racebank picks it. A test in atomic.rs holds the copy to the statements the server sends.
BANK_RACEBANK_SQL = """\\if :from < :to
WITH debited AS (UPDATE racebank.bank_accounts SET balance = balance - :amount::int8, replaced = balance,
 version = version + 1, debits = debits + :amount::int8, deposits = deposits + 0, withdrawals = withdrawals + 0,
 transfers = transfers + 1, transfer_sum = transfer_sum + :amount::int8, retries = retries + 0,
 deadlocks = deadlocks + 0
 WHERE bank = '{bank}' AND id = :from::text AND balance >= :amount::int8 RETURNING balance),
 credited AS (UPDATE racebank.bank_accounts SET balance = balance + :amount::int8, replaced = balance,
 version = version + 1, credits = credits + :amount::int8
 WHERE bank = '{bank}' AND id = :to::text AND EXISTS (SELECT FROM debited)
 AND balance <= 9223372036854775807 - :amount::int8 RETURNING balance)
 SELECT (SELECT balance FROM debited), (SELECT balance FROM credited),
 CASE WHEN :to::text IS NOT NULL AND EXISTS (SELECT FROM debited) AND NOT EXISTS (SELECT FROM credited)
 THEN racebank.bank_move_refused(:to::text) END;
\\else
WITH credited AS (UPDATE racebank.bank_accounts SET balance = balance + :amount::int8, replaced = balance,
 version = version + 1, credits = credits + :amount::int8, deposits = deposits + 0, withdrawals = withdrawals + 0,
 transfers = transfers + 1, transfer_sum = transfer_sum + :amount::int8, retries = retries + 0,
 deadlocks = deadlocks + 0
 WHERE bank = '{bank}' AND id = :to::text AND balance <= 9223372036854775807 - :amount::int8 RETURNING balance),
 debited AS (UPDATE racebank.bank_accounts SET balance = balance - :amount::int8, replaced = balance,
 version = version + 1, debits = debits + :amount::int8
 WHERE bank = '{bank}' AND id = :from::text AND EXISTS (SELECT FROM credited) AND balance >= :amount::int8
 RETURNING balance)
 SELECT (SELECT balance FROM debited), (SELECT balance FROM credited),
 CASE WHEN :from::text IS NOT NULL AND EXISTS (SELECT FROM credited) AND NOT EXISTS (SELECT FROM debited)
 THEN racebank.bank_move_refused(:from::text) END;
\\endif
"""


# Issue 19's target for the bank on PostgreSQL: racebank's atomic transfers over HTTP at least this
# fraction of pgbench running the same two-row transfer transaction (racebank's own statements) at
# the same client count.
BANK_PG_TARGET = 0.7
SAME_TRANSACTION = "pgbench, the same transaction"
BARE_TRANSFER = "pgbench, a bare transfer"
BANK_PG_LEGEND = (
    "The same transaction is racebank's own two statements (the one that writes the smaller id "
    "first runs), run by pgbench on a bank of its own: what racebank asks of PostgreSQL, without "
    "HTTP. A bare transfer is the least a transfer can cost, without racebank's books in the row: "
    "the ratio to it adds what the books cost. CPU per transfer: the machine's busy time (every "
    "core, from /proc/stat) over the transfers, and the parts of it the load tool (racebank-load or "
    "pgbench) and racebank's server used; the rest is PostgreSQL's, and whatever else ran.")


def bank_postgres(args, where=""):
    """PostgreSQL atomic transfers through racebank against pgbench running the same transaction
    (racebank's own statements, on a bank of its own: the SQL without HTTP), and pgbench running a
    bare two-row transfer (one statement: the debit with its funds check, then the credit) on a
    table of its own, without racebank's books: all in a scratch database made for this run, so that
    no earlier run's rows or bloat meet them. Returns the report (its heading ends with `where`) and
    the three medians: racebank's, the same transaction's and the bare transfer's."""
    clients = 16
    table_name = "bench_bank"
    sql_bank = "bank-sql"
    bare = (BANK_PGBENCH_PICK
            + f"WITH debit AS (UPDATE {table_name} SET balance = balance - :amount "
            "WHERE id = :from AND balance >= :amount RETURNING balance), "
            f"credit AS (UPDATE {table_name} SET balance = balance + :amount "
            "WHERE id = :to AND EXISTS (SELECT 1 FROM debit) RETURNING balance) "
            "SELECT (SELECT balance FROM debit), (SELECT balance FROM credit);\n")
    ours = BANK_PGBENCH_PICK + BANK_RACEBANK_SQL.format(bank=sql_bank).replace("\n ", " ")
    with pg_scratch_database() as database:
        pg_psql(f"CREATE TABLE {table_name} (id int PRIMARY KEY, balance bigint NOT NULL); "
                f"INSERT INTO {table_name} SELECT n, {BANK_OPENING} FROM generate_series(1, {BANK_ACCOUNTS}) n",
                database)
        command = racebank_bank("atomic", "none", ["--store", "postgres", "--database-url",
                                                   pg_scratch_url(database), "--account", "bank",
                                                   "--pool-size", str(clients)])
        # The server migrates the schema (racebank.bank_accounts and its functions) before the SQL
        # alone gets its rows.
        with server_process(command) as (url, process):
            pg_psql("INSERT INTO racebank.bank_accounts (bank, id, balance, opening) "
                    f"SELECT '{sql_bank}', n::text, {BANK_OPENING}, {BANK_OPENING} "
                    f"FROM generate_series(1, {BANK_ACCOUNTS}) n", database)
            # Statistics, as a database that has been running has them: a generic plan made
            # before any would guess the tables' sizes.
            pg_psql(f"ANALYZE racebank.bank_accounts; ANALYZE {table_name}", database)
            # racebank's connections plan each statement once (plan_cache_mode), and so does pgbench
            # running the same statements.
            budgets = {}
            contenders = [
                ("racebank atomic (HTTP)", lambda: run_bank_load(url, args.seconds, clients)[:2],
                 process.pid),
                (BARE_TRANSFER, lambda: run_pgbench(bare, args.seconds, clients, database), None),
                (SAME_TRANSACTION,
                 lambda: run_pgbench(ours, args.seconds, clients, database,
                                     "-c plan_cache_mode=force_generic_plan"), None)]
            results, _ = alternate([(name, metered(name, measure, pid, args.seconds, budgets))
                                    for name, measure, pid in contenders], args.rounds)
    medians = {name: statistics.median(values) for name, values in results.items()}
    same, bare_rate = medians[SAME_TRANSACTION], medians[BARE_TRANSFER]
    rows = []
    for name in medians:
        machine, client, server_cpu = (statistics.median(part) for part in zip(*budgets[name]))
        rows.append([name, f"{medians[name]:,.0f}", f"{medians[name] / same:.2f}x",
                     f"{medians[name] / bare_rate:.2f}x", f"{machine:.0f}", f"{client:.0f}",
                     f"{server_cpu:.0f}" if server_cpu else "-", f"{machine - client - server_cpu:.0f}",
                     ", ".join(f"{r:,.0f}" for r in results[name])])
    racebank_rate = medians["racebank atomic (HTTP)"]
    ratio = racebank_rate / same
    verdict = "met" if ratio >= BANK_PG_TARGET else "not met"
    report = (f"#### PostgreSQL atomic, {clients} clients (racebank's pool {clients}), --work none{where}\n\n"
              + table(["contender", "transfers/s", "/ the same transaction", "/ a bare transfer",
                       "machine CPU µs / transfer", "load tool", "racebank server",
                       "the rest (PostgreSQL)", "rounds"], rows)
              + f"\n\ntarget: racebank over HTTP at least {BANK_PG_TARGET}x pgbench running the same "
                f"transaction at the same client count: **{ratio:.2f}x**, {verdict}; "
                f"load average after: {os.getloadavg()[0]:.2f}")
    return report, (racebank_rate, same, bare_rate)


def metered(name, measure, server_pid, seconds, budgets):
    """`measure`, recording into `budgets[name]` the CPU time per transfer of the whole machine, of
    the load tool, and of racebank's server (`server_pid`, if any)."""
    def run():
        machine, tool = machine_busy_seconds(), children_cpu_seconds()
        server_cpu = cpu_seconds(server_pid) if server_pid else 0.0
        rps, p99 = measure()
        per_transfer = 1e6 / (rps * seconds)
        budgets.setdefault(name, []).append((
            (machine_busy_seconds() - machine) * per_transfer,
            (children_cpu_seconds() - tool) * per_transfer,
            ((cpu_seconds(server_pid) - server_cpu) if server_pid else 0.0) * per_transfer))
        return rps, p99
    return run


def section_bank_pg(args):
    """Only the PostgreSQL part of `bank`, `--sittings` times; with --pin-postgres every sitting runs
    it twice, on the cores everything shares and then with PostgreSQL on a core of its own, and a
    summary compares the layouts sitting by sitting."""
    missing = [tool for tool in ("pgbench", "psql") if not shutil.which(tool)]
    if missing:
        return f"### The bank on PostgreSQL\n\nskipped: {', '.join(missing)} not installed"
    layouts = [shared_cores] + ([postgres_on_its_own_core] if args.pin_postgres else [])
    out = [f"### The bank on PostgreSQL ({BANK_ACCOUNTS} accounts, transfers of 1..5 between random "
           f"accounts; {args.rounds} alternating rounds of {args.seconds} s, medians)"]
    summary = []
    for sitting in range(1, args.sittings + 1):
        for layout in layouts:
            with layout() as where:
                report, (racebank_rate, same, bare) = bank_postgres(args, f"; sitting {sitting}, {where}")
            out.append(report)
            summary.append([sitting, where, f"{racebank_rate:,.0f}", f"{same:,.0f}",
                            f"**{racebank_rate / same:.2f}x**", f"{bare:,.0f}", f"{racebank_rate / bare:.2f}x"])
    out.append(BANK_PG_LEGEND)
    if len(summary) > 1:
        out.append(f"#### Every sitting (target: racebank at least {BANK_PG_TARGET}x the same transaction)\n\n"
                   + table(["sitting", "layout", "racebank transfers/s", "pgbench, the same transaction",
                            "racebank / that", "pgbench, a bare transfer", "racebank / that"], summary))
    return "\n\n".join(out)


@contextmanager
def shared_cores():
    """The layout as it is: the load tools, racebank and PostgreSQL on every core."""
    yield "every process on every core"


def postgres_pids():
    """The local PostgreSQL server's processes (the postmaster and every backend)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/comm") as comm:
                if comm.read().strip() == "postgres":
                    pids.append(int(entry))
        except (OSError, ValueError):
            continue
    return pids


@contextmanager
def postgres_on_its_own_core():
    """PostgreSQL on the last core and this script (so the load tools and racebank it starts) on
    the others: the layout of a database on a machine of its own, where the HTTP hop's CPU does
    not come out of the database's. Backends started meanwhile inherit the postmaster's core; every
    process gets all the cores back after. Yields the layout, in words. Needs the right to set
    another user's affinity (root)."""
    cores = sorted(os.sched_getaffinity(0))
    pids = postgres_pids()
    if len(cores) < 2 or not pids:
        raise RuntimeError("--pin-postgres needs 2 cores and a PostgreSQL server on this machine")
    database, others = {cores[-1]}, set(cores[:-1])
    try:
        pin(pids, database)
        os.sched_setaffinity(0, others)
        yield (f"PostgreSQL on core {cores[-1]}, the load tools and racebank on "
               + ",".join(map(str, sorted(others))))
    finally:
        os.sched_setaffinity(0, set(cores))
        pin(postgres_pids(), set(cores))


def pin(pids, cores):
    """Each of `pids` on `cores`, but for those that ended meanwhile."""
    for pid in pids:
        try:
            os.sched_setaffinity(pid, cores)
        except ProcessLookupError:
            pass


# --- pg-atomic: single-account PostgreSQL atomic against pgbench at 16 clients (issue 19) ------
# The target: racebank atomic at least 0.8x pgbench running one bare conditional UPDATE. Both run in a
# scratch database made for this run and dropped after it, so nothing else's rows or bloat meet them.

PG_ATOMIC_CLIENTS = 16
PG_ATOMIC_ROUNDS = 3
PG_ATOMIC_SECONDS = 4
# pgbench's statement: the same single-row, funds-checked increment racebank's atomic mode makes,
# without the ledger, in the simple protocol (pgbench's default).
PG_ATOMIC_PGBENCH = "UPDATE t SET balance = balance + 1 WHERE id = 1 AND balance + 1 >= 0 RETURNING balance;\n"


def pg_scratch_url(database):
    return urllib.parse.urlparse(PG_URL)._replace(path=f"/{database}").geturl()


@contextmanager
def pg_scratch_database():
    """A database of its own for one run (racebank's schema and pgbench's tables), dropped after."""
    database = f"racebank_bench_{os.getpid()}"
    pg_psql(f"CREATE DATABASE {database}")
    try:
        yield database
    finally:
        pg_psql(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def run_pgbench_simple(database, script, clients, seconds):
    """pgbench -n -c CLIENTS -j 2 -T SECONDS, simple protocol, on `database`; returns tps."""
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as file:
        file.write(script)
    connection = pg_connection_args(database)
    try:
        out = subprocess.run(
            ["pgbench", "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), "-f", file.name,
             *connection],
            capture_output=True, text=True, timeout=seconds + 60, env=pgbench_env())
    finally:
        os.unlink(file.name)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out.stdout)
    failed = re.search(r"number of failed transactions: (\d+)", out.stdout)
    if not tps or (failed and int(failed.group(1)) > 0):
        raise RuntimeError(f"pgbench failed: {out.stdout[-300:]} {out.stderr[-500:]}")
    return float(tps.group(1))


def section_pg_atomic(args):
    missing = [tool for tool in ("pgbench", "psql") if not shutil.which(tool)]
    if missing:
        return f"### PostgreSQL atomic vs pgbench\n\nskipped: {', '.join(missing)} not installed"
    rounds = args.rounds or PG_ATOMIC_ROUNDS
    seconds = args.seconds or PG_ATOMIC_SECONDS
    clients = PG_ATOMIC_CLIENTS
    results = {"racebank": [], "pgbench": []}
    verdicts = []
    with pg_scratch_database() as database:
        pg_psql("CREATE TABLE t (id int PRIMARY KEY, balance bigint NOT NULL); INSERT INTO t VALUES (1, 0)", database)
        command = [RACEBANK, "--store", "postgres", "--database-url", pg_scratch_url(database),
                   "--mode", "atomic", "--work", "none", "--pool-size", str(clients),
                   "--addr", "127.0.0.1:{port}"]
        with server(command) as url:
            def racebank_round():
                out = subprocess.run(
                    [LOAD, "--url", url, "-c", str(clients), "-z", f"{seconds}s", "--json", "--no-progress"],
                    capture_output=True, text=True, timeout=seconds + 60)
                if out.returncode != 0:
                    raise RuntimeError(f"racebank-load exited {out.returncode}: {out.stderr.strip()[-500:]}")
                report = json.loads(out.stdout)
                verdicts.append(report["verdict"])
                return report["rps"]

            def pgbench_round():
                return run_pgbench_simple(database, PG_ATOMIC_PGBENCH, clients, seconds)

            # Warm both up: racebank opens its pool and prepares its statement, pgbench's row and
            # racebank's are both hot, before anything is measured.
            subprocess.run([LOAD, "--url", url, "-c", str(clients), "-n", "2000", "--json", "--no-progress"],
                           capture_output=True, timeout=120, check=True)
            run_pgbench_simple(database, PG_ATOMIC_PGBENCH, clients, 1)
            contenders = [("racebank", racebank_round), ("pgbench", pgbench_round)]
            for round_ in range(rounds):
                # Who goes first alternates too, so neither always runs right after the other.
                for name, measure in contenders if round_ % 2 == 0 else contenders[::-1]:
                    results[name].append(measure())
                ratio = results["racebank"][-1] / results["pgbench"][-1]
                print(f"  round {round_ + 1}: racebank {results['racebank'][-1]:>8,.0f} req/s   "
                      f"pgbench {results['pgbench'][-1]:>8,.0f} tps   ratio {ratio:.3f}", flush=True)
            stats = get_json(f"{url}/stats")
    ours, theirs = statistics.median(results["racebank"]), statistics.median(results["pgbench"])
    rows = [["racebank atomic (HTTP, racebank-load -c 16 deposits)", f"{ours:,.0f}",
             ", ".join(f"{r:,.0f}" for r in results["racebank"])],
            ["pgbench -n -c 16 -j 2, simple protocol, bare UPDATE", f"{theirs:,.0f}",
             ", ".join(f"{r:,.0f}" for r in results["pgbench"])]]
    ratios = ", ".join(f"{a / b:.3f}" for a, b in zip(results["racebank"], results["pgbench"]))
    identity = stats["balance"] == stats["expected_balance"] - stats["lost_net"]
    return (f"### PostgreSQL atomic vs pgbench, {clients} clients ({rounds} alternating rounds of {seconds} s, "
            f"medians)\n\n" + table(["contender", "req/s or tx/s", "rounds"], rows)
            + f"\n\nracebank atomic / pgbench: **{ours / theirs:.3f}x** (per round: {ratios}; target: at least 0.8x)"
            + f"\n\nracebank-load verdicts: {', '.join(verdicts)}; /stats after the run: balance "
              f"{stats['balance']}, expected {stats['expected_balance']}, lost_net {stats['lost_net']}, "
              f"identity {'holds' if identity else 'BROKEN'}")


def section_bank_rate(args):
    out = []
    for mode in ["atomic", "mutex"]:
        command = [RACEBANK, "--accounts", "8", "--mode", mode, "--work", "none",
                   "--addr", "127.0.0.1:{port}"]
        with server(command) as url:
            contenders = [("run (deposits)", lambda: run_racebank_load(url, args.seconds)),
                          ("bank --reads 0 (transfers)", lambda: run_bank(url, args.seconds, ["--reads", "0"])),
                          ("bank (half reads)", lambda: run_bank(url, args.seconds))]
            results, p99s = alternate(contenders, args.rounds)
        deposits = statistics.median(results["run (deposits)"])
        rows = [[name, f"{statistics.median(rps):.0f}", f"{statistics.median(p99s[name]):.2f}",
                 f"{statistics.median(rps) / deposits:.2f}x", len(rps)]
                for name, rps in results.items()]
        out.append(f"### bank vs run, racebank --accounts 8 --mode {mode} --work none, c={CONCURRENCY}, "
                   f"{args.rounds} alternating rounds of {args.seconds} s, medians\n\n"
                   + table(["load", "req/s", "p99 ms", "/ run", "rounds"], rows)
                   + "\n\ntarget: bank --reads 0 at least 0.9x run")
    return "\n\n".join(out)


def section_checker(args):
    subprocess.run(["cargo", "build", "--release", "-p", "racebank-load", "--example", "bank_checker"],
                   cwd=ROOT, check=True)
    rows = []
    for count in [10_000, 100_000, 1_000_000]:
        out = subprocess.run([os.path.join(RELEASE, "examples", "bank_checker"), str(count)],
                             capture_output=True, text=True, check=True, timeout=600)
        r = json.loads(out.stdout)
        log(f"  {count}: {r}")
        rows.append([f"{count:,}", f"{r['check_ms']:.1f}", f"{r['ns_per_op']:.1f}",
                     f"{r['rss_with_history_kib'] / 1024:.1f}", f"{r['peak_kib'] / 1024:.1f}",
                     f"{(r['peak_kib'] - r['rss_with_history_kib'])}"])
    return ("### The bank checker, a history held in memory (half reads of 8 accounts, 1 in 100 reads wrong)\n\n"
            + table(["operations", "check ms", "ns / op", "RSS with the history MiB", "peak MiB",
                     "checker's growth KiB"], rows))


SECTIONS = {"strategies": section_strategies, "clients": section_clients,
            "server": section_server, "memory": section_memory, "burst": section_burst,
            "postgres": section_postgres, "redis": section_redis, "bank": section_bank,
            "bank-pg": section_bank_pg, "pg-atomic": section_pg_atomic, "bank-rate": section_bank_rate, "checker": section_checker}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], default=[])
    # None: each section's own default (5 rounds of 5 s; pg-atomic 3 of 4 s, as issue 19 asks).
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seconds", type=int)
    parser.add_argument("--burst-rounds", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 s: a smoke run, not a result")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--pin-postgres", action="store_true",
                        help="bank-pg: each sitting also with PostgreSQL on a core of its own, "
                             "everything else on the others")
    parser.add_argument("--sittings", type=int, default=1,
                        help="bank-pg: how many times to measure (each layout in turn)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 2, 2
    pg_atomic_args = argparse.Namespace(**vars(args))
    args.rounds, args.seconds = args.rounds or 5, args.seconds or 5
    if not args.no_build:
        build()
    log(f"machine: {os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}")
    for name in args.sections or list(SECTIONS):
        log(f"== {name}")
        print(SECTIONS[name](pg_atomic_args if name == "pg-atomic" else args) + "\n", flush=True)


if __name__ == "__main__":
    main()

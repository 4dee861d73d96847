// racebank live page: reads the server's event stream, shows the numbers and the chart, and sends
// bursts and resets through the public API. Plain JavaScript, no build step, nothing from elsewhere.
"use strict";

(() => {
  const WINDOW_MS = 60_000; // the chart shows the last minute
  const MIN_SPAN_MS = 5_000; // and at least five seconds, so the first samples are not stretched
  const SUMMARY_EVERY_MS = 5_000; // screen readers hear a summary at most this often
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  const whole = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
  const number = (value) => whole.format(value);

  /** Samples for the chart: {t, actual, expected}. */
  let history = [];
  let setup = null;
  let latest = null;
  /** The bank's samples for the total-over-time chart, and its latest books (null: no bank). */
  let bankHistory = [];
  let latestBank = null;
  let lastSummary = { at: 0, text: "" };
  let frames = 0; // stats frames received, for tests that wait for the page to move on

  // ---- the stream ---------------------------------------------------------------------------

  function connect() {
    const source = new EventSource("/live/events");
    source.addEventListener("open", () => setConnection("live", "Live"));
    source.addEventListener("error", () => {
      if (source.readyState === EventSource.CLOSED) {
        setConnection("reconnecting", "Disconnected: reload the page");
      } else {
        setConnection("reconnecting", "Server unreachable, retrying…");
      }
    });
    source.addEventListener("hello", (event) => {
      const hello = JSON.parse(event.data);
      showSetup(hello);
      // The first event carries the numbers now: no dashes until the first tick.
      if (hello.stats) showFrame(hello);
      $("bank").hidden = !hello.bank;
    });
    source.addEventListener("stats", (event) => showFrame(JSON.parse(event.data)));
    source.addEventListener("trouble", (event) => {
      setConnection("reconnecting", JSON.parse(event.data).detail);
    });
  }

  function setConnection(state, text) {
    $("connection").dataset.state = state;
    $("connection-text").textContent = text;
  }

  function showSetup(hello) {
    if (setup && (setup.mode !== hello.mode || setup.work !== hello.work)) {
      history = []; // another server (or the same one restarted in another mode)
      bankHistory = [];
    }
    setup = hello;
    $("mode").textContent = hello.mode;
    $("work").textContent = hello.work;
    document.title = `racebank live: ${hello.mode}`;
    renderLesson($("lesson"), hello.lesson || `No paragraph for the mode ${hello.mode} yet.`);
    $("load-command").textContent = `racebank-load --url ${location.origin} -z 30s`;
  }

  /** Writes the paragraph with `backticked` spans as code, without parsing any HTML. */
  function renderLesson(element, text) {
    element.replaceChildren();
    text.split("`").forEach((part, i) => {
      if (i % 2 === 1) {
        const code = document.createElement("code");
        code.textContent = part;
        element.append(code);
      } else {
        element.append(part);
      }
    });
  }

  function showFrame({ stats, requests_per_second: rps, bank }) {
    if (latest && decided(stats) < decided(latest)) {
      history = []; // a reset: the old lines say nothing about the new account
    }
    latest = stats;
    $("chart").dataset.frames = String(++frames);
    const now = Date.now();
    history.push({ t: now, actual: stats.balance, expected: stats.expected_balance });
    while (history.length > 2 && history[1].t < now - WINDOW_MS) history.shift();

    const lost = stats.lost_updates > 0 || stats.lost_net !== 0;
    setNumber("balance", number(stats.balance), stats.drift !== 0);
    setNumber("expected", number(stats.expected_balance), false);
    setNumber("lost-updates", number(stats.lost_updates), stats.lost_updates > 0);
    setNumber("lost-amount", number(stats.lost_net), stats.lost_net !== 0);
    setNumber("overdraft", stats.overdraft ? "Yes" : "No", stats.overdraft);
    $("overdraft-note").textContent = stats.overdraft
      ? `paid out ${number(-stats.expected_balance)} more than was ever held`
      : "paid out beyond what was held";
    setNumber("rps", rps === 0 ? "0" : rps < 10 ? rps.toFixed(1) : number(rps), false);
    $("counters").textContent =
      `Since start or reset: ${number(stats.deposit_count)} deposits (${number(stats.deposit_sum)}), ` +
      `${number(stats.withdrawal_count)} withdrawals (${number(stats.withdrawal_sum)}), ` +
      `${number(stats.refused_count)} refused, ${number(stats.retries)} retries; ` +
      `opening balance ${number(stats.initial_balance)}.`;
    if (bank) showBank(bank);
    announce(stats, lost, now);
    drawChart();
  }

  function decided(stats) {
    return stats.deposit_count + stats.withdrawal_count + stats.refused_count;
  }

  function setNumber(id, text, bad) {
    const element = $(id);
    if (element.textContent !== text) {
      element.textContent = text;
      element.style.setProperty("--chars", String(text.length));
    }
    const card = element.closest(".card");
    if (id === "expected" || id === "rps" || id === "bank-expected") return;
    card.classList.toggle("bad", bad);
  }

  /** A short summary for screen readers, only when it changed and not more often than every 5 s. */
  function announce(stats, lost, now) {
    let text = `Balance ${number(stats.balance)}, expected ${number(stats.expected_balance)}.`;
    if (lost) {
      text += ` ${number(stats.lost_updates)} lost updates erased ${number(stats.lost_net)}.`;
    }
    if (stats.overdraft) text += " Overdraft.";
    if (latestBank) {
      text += ` Bank total ${number(latestBank.total)}, expected ${number(latestBank.expected_total)}.`;
    }
    if (text === lastSummary.text || now - lastSummary.at < SUMMARY_EVERY_MS) return;
    lastSummary = { at: now, text };
    $("summary").textContent = text;
  }

  // ---- the chart ----------------------------------------------------------------------------

  function svg(name, attributes, parent) {
    const element = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
    if (parent) parent.append(element);
    return element;
  }

  /** About `count` round tick values (1, 2 or 5 times a power of ten) covering [low, high]. */
  function ticks(low, high, count) {
    const raw = (high - low) / count;
    const power = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 5, 10].map((m) => m * power).find((s) => raw <= s);
    const values = [];
    for (let v = Math.floor(low / step) * step; v <= high + step / 2; v += step) values.push(v);
    return values;
  }

  function drawChart() {
    drawLines($("chart"), history, { title: "balance (cents)", fromZero: true, label: compact.format });
  }

  function drawBankChart() {
    drawLines($("bank-chart"), bankHistory, { title: "total (cents)", fromZero: false, label: number });
  }

  /**
   * Two lines over the last minute, expected (dashed) and actual, with the gap between them
   * shaded. `fromZero`: the scale includes 0 (a balance); otherwise it hugs the values, so that a
   * total of thousands that moves by 10 shows the step. `label` formats the end labels.
   */
  function drawLines(box, samples, { title, fromZero, label }) {
    const width = Math.max(280, Math.floor(box.clientWidth));
    const height = width < 600 ? 220 : 300;
    const m = { left: 64, right: 64, top: 12, bottom: 44 };
    const plotW = width - m.left - m.right;
    const plotH = height - m.top - m.bottom;
    const root = svg("svg", {
      viewBox: `0 0 ${width} ${height}`, width, height, "aria-hidden": "true", focusable: "false",
    });

    if (samples.length === 0) {
      svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "waiting" }, root)
        .textContent = "Waiting for the first numbers…";
      box.replaceChildren(root);
      return;
    }

    const now = samples[samples.length - 1].t;
    const span = Math.min(WINDOW_MS, Math.max(MIN_SPAN_MS, now - samples[0].t));
    const start = now - span;
    const values = samples.flatMap((s) => [s.actual, s.expected]);
    let low = Math.min(...values);
    let high = Math.max(...values);
    if (fromZero) {
      low = Math.min(0, low);
      high = Math.max(10, high);
    } else {
      const pad = Math.max(10, (high - low) / 4);
      low -= pad;
      high += pad;
    }
    const yTicks = ticks(low, high, height < 250 ? 4 : 5);
    const yStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 1;
    low = Math.min(low, yTicks[0]);
    high = Math.max(high, yTicks[yTicks.length - 1]);
    const x = (t) => m.left + ((t - start) / span) * plotW;
    const y = (v) => m.top + (1 - (v - low) / (high - low)) * plotH;

    // Grid and axes.
    const grid = svg("g", { class: "grid" }, root);
    const axis = svg("g", { class: "axis" }, root);
    for (const v of yTicks) {
      svg("line", { x1: m.left, x2: m.left + plotW, y1: y(v), y2: y(v) }, grid);
      const label = svg("text", { x: m.left - 8, y: y(v), "text-anchor": "end", "dominant-baseline": "middle" }, axis);
      label.textContent = Math.abs(v) >= 100_000 && yStep >= 1000 ? compact.format(v) : number(v);
    }
    const stepS = [1, 2, 5, 10, 15, 30].find((s) => span / 1000 / s <= 6) || 30;
    for (let ago = 0; ago * 1000 <= span + 1; ago += stepS) {
      const at = x(now - ago * 1000);
      svg("line", { x1: at, x2: at, y1: m.top, y2: m.top + plotH }, grid);
      const label = svg("text", { x: at, y: m.top + plotH + 18, "text-anchor": "middle" }, axis);
      label.textContent = ago === 0 ? "now" : `−${ago} s`;
    }
    if (low < 0) svg("line", { class: "zero", x1: m.left, x2: m.left + plotW, y1: y(0), y2: y(0) }, root);
    svg("text", { class: "axis-title", x: m.left + plotW / 2, y: height - 4, "text-anchor": "middle" }, root)
      .textContent = "time (seconds ago)";
    svg("text", {
      class: "axis-title", x: 0, y: 0, "text-anchor": "middle",
      transform: `translate(14 ${m.top + plotH / 2}) rotate(-90)`,
    }, root).textContent = title;

    // The gap between the lines, then the lines.
    const points = (key) => samples.map((s) => `${x(s.t).toFixed(1)},${y(s[key]).toFixed(1)}`);
    const expected = points("expected");
    const actual = points("actual");
    svg("polygon", { class: "gap", points: [...expected, ...actual.reverse()].join(" ") }, root);
    actual.reverse();
    svg("polyline", { class: "line line-expected", points: expected.join(" ") }, root);
    svg("polyline", { class: "line line-actual", points: actual.join(" ") }, root);

    // Where each line ends, labelled at the right edge, pushed apart if they would overlap.
    const last = samples[samples.length - 1];
    let yExpected = y(last.expected);
    let yActual = y(last.actual);
    if (Math.abs(yExpected - yActual) < 14) {
      const middle = (yExpected + yActual) / 2;
      const up = last.expected >= last.actual ? -7 : 7;
      yExpected = middle + up;
      yActual = middle - up;
    }
    svg("text", { class: "end-label end-expected", x: m.left + plotW + 6, y: yExpected, "dominant-baseline": "middle" }, root)
      .textContent = label(last.expected);
    svg("text", { class: "end-label end-actual", x: m.left + plotW + 6, y: yActual, "dominant-baseline": "middle" }, root)
      .textContent = label(last.actual);

    box.replaceChildren(root);
  }

  // ---- the bank ---------------------------------------------------------------------------

  function bankDecided(bank) {
    return bank.deposits + bank.withdrawals + bank.transfers + bank.refused;
  }

  function showBank(bank) {
    if (latestBank && bankDecided(bank) < bankDecided(latestBank)) {
      bankHistory = []; // a reset of the bank
    }
    latestBank = bank;
    const now = Date.now();
    bankHistory.push({ t: now, actual: bank.total, expected: bank.expected_total });
    while (bankHistory.length > 2 && bankHistory[1].t < now - WINDOW_MS) bankHistory.shift();
    $("bank-chart").dataset.frames = String(frames);

    setNumber("bank-total", number(bank.total), bank.total !== bank.expected_total);
    setNumber("bank-expected", number(bank.expected_total), false);
    setNumber("bank-created", number(bank.money_created), bank.money_created !== 0);
    setNumber("bank-destroyed", number(bank.money_destroyed), bank.money_destroyed !== 0);
    setNumber("bank-deadlocks", number(bank.deadlocks), bank.deadlocks > 0);
    setNumber("bank-households", number(bank.households_below_zero), bank.households_below_zero > 0);
    $("bank-counters").textContent =
      `Since start or reset: ${number(bank.transfers)} transfers (${number(bank.transfer_sum)}), ` +
      `${number(bank.deposits)} deposits, ${number(bank.withdrawals)} withdrawals, ` +
      `${number(bank.refused)} refused, ${number(bank.lost_updates)} lost updates, ` +
      `${number(bank.retries)} retries; opening total ${number(bank.opening_total)}.`;
    showAccounts(bank);
    drawBankChart();
  }

  /** One row per account the stream carries (the first 100), each updated in place. */
  function showAccounts(bank) {
    const shown = bank.accounts.length;
    let note = bank.account_count > shown
      ? `The first ${number(shown)} of ${number(bank.account_count)} accounts; /stats has every one.`
      : `${number(shown)} accounts.`;
    if (bank.households.length > 0) {
      note += ` Households (one shared limit each): ${bank.households.map((h) => h.join("+")).join(", ")}.`;
    }
    $("accounts-note").textContent = note;
    $("transfer-among").max = String(Math.max(2, shown));

    const body = $("accounts").tBodies[0];
    while (body.rows.length > shown) body.deleteRow(-1);
    while (body.rows.length < shown) {
      const row = body.insertRow();
      row.insertCell().append(document.createElement("code"));
      for (let i = 0; i < 3; i++) row.insertCell().className = "num";
      const bar = document.createElement("span");
      bar.className = "bar";
      row.insertCell().append(bar);
    }
    const widest = Math.max(1, ...bank.accounts.map((a) => Math.abs(a.balance)));
    bank.accounts.forEach((account, i) => {
      const row = body.rows[i];
      const cells = [account.id, number(account.balance), number(account.expected_balance),
        account.drift > 0 ? `+${number(account.drift)}` : number(account.drift)];
      cells.forEach((text, c) => {
        const target = c === 0 ? row.cells[0].firstChild : row.cells[c];
        if (target.textContent !== text) target.textContent = text;
      });
      row.classList.toggle("bad", account.drift !== 0);
      const bar = row.cells[4].firstChild;
      bar.style.width = `${(100 * Math.abs(account.balance)) / widest}%`;
      bar.classList.toggle("negative", account.balance < 0);
    });
  }

  async function sendTransfers(event) {
    event.preventDefault();
    const ids = (latestBank ? latestBank.accounts : []).map((a) => a.id);
    const count = clampInt($("transfer-count").value, 1, 500, 20);
    const amount = clampInt($("transfer-amount").value, 1, Number.MAX_SAFE_INTEGER, 10);
    const among = clampInt($("transfer-among").value, 2, Math.max(2, ids.length), 3);
    const button = $("transfer-send");
    const result = $("transfer-result");
    button.disabled = true;
    for (const key of ["answered", "ok"]) delete result.dataset[key];
    result.dataset.state = "sending";
    result.replaceChildren(paragraph(`Sending ${count} transfers of ${number(amount)}…`));

    // Two different accounts of the first `among`, each pair equally likely.
    const n = Math.min(among, ids.length);
    const random = (below) => Math.floor(Math.random() * below);
    const statuses = [];
    const started = performance.now();
    await Promise.all(Array.from({ length: count }, () => {
      const from = random(n);
      const to = (from + 1 + random(n - 1)) % n;
      return fetch("/transfers", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ from: ids[from], to: ids[to], amount }),
        cache: "no-store",
      })
        .then((response) => statuses.push(response.status))
        .catch(() => statuses.push(0));
    }));
    const elapsed = performance.now() - started;
    button.disabled = false;

    const tally = (status) => statuses.filter((s) => s === status).length;
    const ok = tally(200);
    const refused = tally(409);
    const deadlocked = tally(503);
    const failed = statuses.length - ok - refused - deadlocked;
    result.dataset.state = "done";
    result.dataset.answered = String(statuses.length);
    result.dataset.ok = String(ok);
    let text = `${statuses.length} of ${count} transfers of ${number(amount)} answered in ` +
      `${number(elapsed)} ms: ${ok} × 200 OK`;
    if (refused) text += `, ${refused} × 409 refused`;
    if (deadlocked) text += `, ${deadlocked} × 503 (deadlock or gave up)`;
    if (failed) text += `, ${failed} failed`;
    result.replaceChildren(paragraph(`${text}. Watch the total.`));
  }

  async function resetBank() {
    const result = $("transfer-result");
    const button = $("bank-reset");
    button.disabled = true;
    try {
      const response = await fetch("/bank/reset", {
        method: "POST",
        headers: { "content-type": "application/json" },
        cache: "no-store",
      });
      const bank = await response.json();
      if (!response.ok) throw new Error(bank.detail || `status ${response.status}`);
      bankHistory = [];
      result.dataset.state = "reset";
      result.replaceChildren(paragraph(
        `Reset: every account back to its opening balance, total ${number(bank.total)}.`,
      ));
    } catch (error) {
      result.replaceChildren(paragraph(`Reset failed: ${error.message}`));
    } finally {
      button.disabled = false;
    }
  }

  // ---- the controls -------------------------------------------------------------------------

  function clampInt(value, min, max, fallback) {
    const n = Number.parseInt(value, 10);
    return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
  }

  async function sendBurst(event) {
    event.preventDefault();
    const count = clampInt($("burst-count").value, 1, 500, 20);
    const amount = clampInt($("burst-amount").value, 1, Number.MAX_SAFE_INTEGER, 5);
    const kind = $("burst-kind").value === "withdraw" ? "withdraw" : "deposit";
    const noun = kind === "deposit" ? "deposits" : "withdrawals";
    const button = $("burst-send");
    const result = $("burst-result");
    button.disabled = true;
    for (const key of ["answered", "ok", "repeats"]) delete result.dataset[key];
    result.dataset.state = "sending";
    result.replaceChildren(paragraph(`Sending ${count} ${noun} of ${number(amount)}…`));

    // Every fetch starts now; the browser sends as many at once as it has connections for.
    const body = JSON.stringify({ amount });
    const arrivals = [];
    const started = performance.now();
    await Promise.all(Array.from({ length: count }, () =>
      fetch(`/${kind}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        cache: "no-store",
      })
        .then(async (response) => {
          const answer = await response.json().catch(() => ({}));
          arrivals.push({ status: response.status, balance: answer.balance });
        })
        .catch(() => arrivals.push({ status: 0 })),
    ));
    const elapsed = performance.now() - started;
    button.disabled = false;
    showBurst(result, { count, amount, noun, elapsed, arrivals });
  }

  function showBurst(result, { count, amount, noun, elapsed, arrivals }) {
    const ok = arrivals.filter((a) => a.status === 200);
    const refused = arrivals.filter((a) => a.status === 409).length;
    const failed = arrivals.length - ok.length - refused;
    const balances = ok.map((a) => a.balance);
    const repeats = balances.length - new Set(balances).size;

    result.dataset.state = "done";
    result.dataset.answered = String(arrivals.length);
    result.dataset.ok = String(ok.length);
    result.dataset.repeats = String(repeats);

    let answers = `${arrivals.length} of ${count} ${noun} of ${number(amount)} answered in ` +
      `${number(elapsed)} ms: ${ok.length} × 200 OK`;
    if (refused) answers += `, ${refused} × 409 refused (insufficient funds)`;
    if (failed) answers += `, ${failed} failed`;
    const parts = [paragraph(`${answers}.`)];
    if (ok.length > 1) {
      const p = document.createElement("p");
      if (repeats > 0) {
        const claim = document.createElement("strong");
        claim.textContent = `${repeats} of the ${ok.length} answers repeated a balance another ` +
          "answer had already reported: each is an update that another wrote over.";
        p.className = "verdict-bad";
        p.append(claim, ` A correct server gives every acknowledged ${noun.slice(0, -1)} of one ` +
          "amount its own balance (while nothing else uses the account).");
      } else {
        p.textContent = `Each of the ${ok.length} answers reported its own balance, as a correct server must.`;
      }
      parts.push(p);
      const shown = balances.slice(0, 40).map(number).join(", ");
      const more = balances.length > 40 ? `, … (${balances.length - 40} more)` : "";
      const list = paragraph(`Balances reported, in order of arrival: ${shown}${more}.`);
      list.className = "balances";
      parts.push(list);
    }
    result.replaceChildren(...parts);
  }

  async function reset() {
    const result = $("burst-result");
    const button = $("reset");
    button.disabled = true;
    try {
      const response = await fetch("/reset", {
        method: "POST",
        // Required even without a body: it is what no cross-site form post can send.
        headers: { "content-type": "application/json" },
        cache: "no-store",
      });
      const stats = await response.json();
      if (!response.ok) throw new Error(stats.detail || `status ${response.status}`);
      history = [];
      result.dataset.state = "reset";
      result.replaceChildren(paragraph(
        `Reset: balance ${number(stats.balance)}, every counter back to zero.`,
      ));
    } catch (error) {
      result.replaceChildren(paragraph(`Reset failed: ${error.message}`));
    } finally {
      button.disabled = false;
    }
  }

  function paragraph(text) {
    const p = document.createElement("p");
    p.textContent = text;
    return p;
  }

  // ---- start --------------------------------------------------------------------------------

  $("burst").addEventListener("submit", sendBurst);
  $("reset").addEventListener("click", reset);
  $("transfers").addEventListener("submit", sendTransfers);
  $("bank-reset").addEventListener("click", resetBank);
  new ResizeObserver(() => drawChart()).observe($("chart"));
  new ResizeObserver(() => drawBankChart()).observe($("bank-chart"));
  drawChart();
  connect();
})();

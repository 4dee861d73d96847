//! The bank's Lua scripts. They keep the single account's two rules ([`super::super::scripts`]):
//! numbers travel as strings and the arithmetic is Redis's (`INCRBY`, `HINCRBY`, the carry of its
//! `add`), and whatever can refuse is checked before anything is written.
//!
//! The bank's balances may be negative (households), so comparisons go through [`BANK_PRELUDE`]'s
//! `less`, which orders signed canonical decimal strings exactly.
//!
//! The ledger is one hash: the bank-wide counts (`deposits`, `withdrawals`, `transfers`,
//! `transfer_sum`, `refused`, `deadlocks`, `retries`, `retries_exhausted`) and, per account,
//! `<id>:opening`, `<id>:credits`, `<id>:debits`, `<id>:lost_updates`, `<id>:created` and
//! `<id>:destroyed`. An id holds no `:`, so no account's field can be another's, nor a bank-wide
//! one. Sums carry into `<field>_carry` as the single account's do.

use std::sync::LazyLock;

use redis::Script;

use crate::store::redis::scripts::with_prelude;

/// Helpers of the bank's scripts, after the single account's prelude (`below`, `add`).
const BANK_PRELUDE: &str = r"
-- Whether the signed canonical decimal string `a` is below `b`, exactly.
local function less(a, b)
  local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  if na ~= nb then return na end
  if na then return below(string.sub(b, 2), string.sub(a, 2)) end
  return below(a, b)
end

-- Subtracts the signed decimal string `value` from the ledger total `field`, exactly: the
-- negation of -2^63 does not fit 64 bits, so it is added in two steps.
local function sub(ledger, field, value)
  if value == '-9223372036854775808' then
    add(ledger, field, '9223372036854775807')
    add(ledger, field, '1')
  elseif string.sub(value, 1, 1) == '-' then
    add(ledger, field, string.sub(value, 2))
  elseif value ~= '0' then
    add(ledger, field, '-' .. value)
  end
end

-- Records an acknowledged move: `kind` is the count it adds to (`deposits`, `withdrawals` or
-- `transfers`); `from` and `to` are the ids debited and credited, '' for none.
local function record_move(ledger, kind, amount, from, to)
  redis.call('HINCRBY', ledger, kind, '1')
  if kind == 'transfers' then add(ledger, 'transfer_sum', amount) end
  if from ~= '' then add(ledger, from .. ':debits', amount) end
  if to ~= '' then add(ledger, to .. ':credits', amount) end
end

-- Writes `new` over account `id`'s balance `key` and returns the balance it replaced. If that is
-- not the one the request read, another write landed in between and this one erased it: over a
-- higher balance it destroyed money (it erased a credit), over a lower one it created money.
local function overwrite(ledger, key, id, new, read)
  local replaced = redis.call('SET', key, new, 'GET') or '0'
  if replaced ~= read then
    redis.call('HINCRBY', ledger, id .. ':lost_updates', '1')
    if less(read, replaced) then
      add(ledger, id .. ':destroyed', replaced)
      sub(ledger, id .. ':destroyed', read)
    else
      add(ledger, id .. ':created', read)
      sub(ledger, id .. ':created', replaced)
    end
  end
  return replaced
end

-- Clears account `id`'s own fields of the ledger and opens it at `opening`.
local function open_account(ledger, id, opening)
  for _, name in ipairs({'credits', 'debits', 'lost_updates', 'created', 'destroyed'}) do
    redis.call('HDEL', ledger, id .. ':' .. name, id .. ':' .. name .. '_carry')
  end
  redis.call('HSET', ledger, id .. ':opening', opening)
end
";

/// Opens the bank: creates each missing account at its opening balance (`SET NX`), and joins the
/// ones another replica created. One script, so each new balance and its ledger entry are born
/// together, and two replicas starting at once create each account once.
///
/// KEYS: ledger, then every balance. ARGV: every account's id and opening balance, in turn.
/// Returns how many accounts it created.
const OPEN: &str = r"
local created = 0
for i = 2, #KEYS do
  local id, opening = ARGV[2 * i - 3], ARGV[2 * i - 2]
  if redis.call('SET', KEYS[i], opening, 'NX') then
    open_account(KEYS[1], id, opening)
    created = created + 1
  end
end
return created
";

/// The blind writes of `unguarded` (and the modes that run its section: `mutex`, `semaphore:N`,
/// `account-locks`, `lease`), and of `optimistic` inside its `MULTI`: every write of the move with
/// `SET ... GET` and the move's ledger entry in one step, so each write learns exactly what it
/// replaced and the ledger is never half written.
///
/// KEYS: ledger, then the balances written. ARGV: kind, amount, from id, to id, then for each
/// balance written its account's id, the balance to write and the balance read. Returns the
/// balances replaced.
const WRITE: &str = r"
local replaced = {}
for i = 2, #KEYS do
  replaced[i - 1] = overwrite(KEYS[1], KEYS[i], ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1])
end
record_move(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
return replaced
";

/// `atomic`: read what the move reads, check the rule (the debited account's own balance, or its
/// household's total), and move the money, in one step: nothing can land between the check and
/// the writes, on any replica. The household's total is summed by `add` in a scratch hash, so it
/// is exact whatever the balances; the scratch is gone before the script ends.
///
/// KEYS: ledger, scratch, then the balances read ([`crate::domain::bank::Move::reads`] order).
/// ARGV: kind, amount, from id, to id, the debited balance's index among the balances (0 for
/// none), the credited one's (0 for none), then the indices of the debited account's household,
/// if it has one. Returns `{'ok', balances written...}`, `{'insufficient', own balance}`,
/// `{'household', carry, field}` (the household's total minus the amount, as `add` keeps it) or
/// `{'overflow', credited balance}`; a refusal writes nothing but its count.
const ATOMIC: &str = r"
local ledger, scratch = KEYS[1], KEYS[2]
local amount, debit, credit = ARGV[2], tonumber(ARGV[5]), tonumber(ARGV[6])
local function balance(i) return redis.call('GET', KEYS[2 + i]) or '0' end
local function refuse(...)
  redis.call('HINCRBY', ledger, 'refused', '1')
  return {...}
end
if debit > 0 then
  if #ARGV > 6 then
    redis.call('DEL', scratch)
    add(scratch, 'short', '-' .. amount)
    for j = 7, #ARGV do add(scratch, 'short', balance(tonumber(ARGV[j]))) end
    local carry = redis.call('HGET', scratch, 'short_carry') or '0'
    local field = redis.call('HGET', scratch, 'short') or '0'
    redis.call('DEL', scratch)
    -- carry * 2^63 + field, with field within 64 bits: its sign is the carry's, or the field's.
    if string.sub(carry, 1, 1) == '-' or (carry == '0' and string.sub(field, 1, 1) == '-') then
      return refuse('household', carry, field)
    end
  elseif less(balance(debit), amount) then
    return refuse('insufficient', balance(debit))
  end
  -- DECRBY refuses, and writes nothing, when the difference would pass -2^63.
  if type(redis.pcall('DECRBY', KEYS[2 + debit], amount)) == 'table' then
    return refuse('insufficient', balance(debit))
  end
end
if credit > 0 and type(redis.pcall('INCRBY', KEYS[2 + credit], amount)) == 'table' then
  if debit > 0 then redis.call('INCRBY', KEYS[2 + debit], amount) end
  return refuse('overflow', balance(credit))
end
record_move(ledger, ARGV[1], amount, ARGV[3], ARGV[4])
local written = {'ok'}
if debit > 0 then table.insert(written, balance(debit)) end
if credit > 0 then table.insert(written, balance(credit)) end
return written
";

/// `lease`: renews every lease of a move, if every one is still the request's own. The leases are
/// taken one at a time, and the first runs out while the request waits for the next: by the time
/// the last is granted, an earlier one may have expired and gone to another request. One step, so
/// no other request's `SET` can land between a lease's check and its renewal.
///
/// KEYS: the leases. ARGV: the request's token, the lease's time to live in ms. Returns 1 if every
/// lease was the request's and runs its full time again, 0 (renewing none) if any was not.
const RENEW: &str = r"
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) ~= ARGV[1] then return 0 end
end
for _, key in ipairs(KEYS) do redis.call('PEXPIRE', key, ARGV[2]) end
return 1
";

/// The ledger and every balance, read together.
///
/// KEYS: ledger, then every balance. Returns `{the ledger's fields and values, the balances}`.
const LEDGER: &str = r"
return {redis.call('HGETALL', KEYS[1]), redis.call('MGET', unpack(KEYS, 2))}
";

/// `/bank/reset`, for every replica at once: every balance and a fresh ledger in one step, so no
/// replica's `/stats` sees new balances with an old ledger.
///
/// KEYS: ledger, then every balance. ARGV: every account's id and balance, in turn.
const RESET: &str = r"
redis.call('DEL', KEYS[1])
for i = 2, #KEYS do
  local id, balance = ARGV[2 * i - 3], ARGV[2 * i - 2]
  redis.call('SET', KEYS[i], balance)
  open_account(KEYS[1], id, balance)
end
return 1
";

fn bank(body: &str) -> String {
    with_prelude(&format!("{BANK_PRELUDE}{body}"))
}

pub(super) static OPEN_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&bank(OPEN)));
/// The source of the write script, for `EVAL` inside `MULTI` (see `optimistic`).
pub(super) static WRITE_SOURCE: LazyLock<String> = LazyLock::new(|| bank(WRITE));
pub(super) static WRITE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&WRITE_SOURCE));
pub(super) static ATOMIC_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&bank(ATOMIC)));
pub(super) static LEDGER_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(LEDGER));
pub(super) static RESET_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&bank(RESET)));
pub(super) static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW));

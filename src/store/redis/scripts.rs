//! The Lua scripts: every step that must not be split is one script, because Redis runs a script
//! to the end before it serves any other command (no other client sees it half done, and a client
//! that drops its request after sending it cannot stop it halfway).
//!
//! Two rules hold in every script:
//! - Numbers travel as strings. Lua's numbers are doubles, exact only up to 2^53, and a balance
//!   goes up to 2^63 - 1; so arithmetic is left to Redis (`INCRBY`, `HINCRBY`: exact 64-bit, and
//!   they refuse to overflow), and comparisons go through [`PRELUDE`]'s `below`, which compares
//!   canonical decimal strings exactly.
//! - Everything that can refuse (funds, overflow, a stale token) is checked before the script
//!   writes anything, so a refusal leaves no trace but its count.
//!
//! An idempotency key's answer is a string, `<generation> <kind> <amount> <status> <balance>`,
//! that expires by itself. `/reset` cannot find and delete every key of the account in one step,
//! so it bumps the account's generation instead, and an answer kept in an older generation counts
//! as none: after a reset every key is free again, as in the other stores.
//!
//! The ledger is a hash of the [`crate::domain::ledger::Ledger`] fields. Counts are `HINCRBY` by one (2^63
//! operations would take longer than Redis lives). Sums of amounts can pass 2^63 in theory (deposit
//! and withdraw `i64::MAX / 2` back and forth), so each sum is two fields, `<sum>` and
//! `<sum>_carry`, worth `carry * 2^63 + sum`, exactly: the same `i128` totals the memory store keeps.

use std::sync::LazyLock;

use redis::Script;

/// Shared helpers, prepended to every script that writes the ledger.
const PRELUDE: &str = r"
-- Whether decimal string `a` is below `b`, exactly: both are canonical non-negative integers
-- (no sign, no leading zeros), so the shorter is smaller, and equal lengths compare as text.
local function below(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end

-- Adds the decimal string `increment` to the ledger total `field`, carrying 2^63 into
-- `field_carry` when the 64-bit field would overflow, so that the total never wraps or fails.
local function add(ledger, field, increment)
  local result = redis.pcall('HINCRBY', ledger, field, increment)
  if type(result) ~= 'table' then return end
  if string.sub(increment, 1, 1) == '-' then
    -- field < 0 here, so field + 2^63 (added in two steps) fits.
    redis.call('HINCRBY', ledger, field, '9223372036854775807')
    redis.call('HINCRBY', ledger, field, '1')
    redis.call('HINCRBY', ledger, field .. '_carry', '-1')
  else
    -- field > 0 here, so field - 2^63 fits.
    redis.call('HINCRBY', ledger, field, '-9223372036854775808')
    redis.call('HINCRBY', ledger, field .. '_carry', '1')
  end
  redis.call('HINCRBY', ledger, field, increment)
end

-- Whether the idempotency key `key` (nil for a request without one) already keeps an answer of
-- this generation (`generation`: the key counting the account's resets).
local function taken(key, generation)
  if key == nil then return false end
  local kept = redis.call('GET', key)
  if not kept then return false end
  return string.match(kept, '^(%d+) ') == (redis.call('GET', generation) or '0')
end

-- Keeps `answer` (`<kind> <amount> <status> <balance>`) for `key`, in this generation, for `ttl` ms.
local function keep(key, generation, answer, ttl)
  if key ~= nil then
    local now = redis.call('GET', generation) or '0'
    redis.call('SET', key, now .. ' ' .. answer, 'PX', ttl)
  end
end

-- Records an acknowledged operation: `kind` is `deposit` or `withdrawal`.
local function record(ledger, kind, amount)
  redis.call('HINCRBY', ledger, kind .. '_count', '1')
  add(ledger, kind .. '_sum', amount)
end

-- Writes `new` over the balance and records the write. If the balance it replaced is not the one
-- the request read, another update landed in between and this write erased it: a lost update of
-- (replaced - read), added as `replaced` plus `negated_read` to stay in exact arithmetic.
local function write(balance, ledger, new, read, negated_read, kind, amount)
  local replaced = redis.call('SET', balance, new, 'GET') or '0'
  record(ledger, kind, amount)
  if replaced ~= read then
    redis.call('HINCRBY', ledger, 'lost_updates', '1')
    add(ledger, 'lost_net', replaced)
    add(ledger, 'lost_net', negated_read)
    -- The same erasure, summed apart by sign (balances are never negative, so `below` applies).
    if below(read, replaced) then
      add(ledger, 'lost_removed', replaced)
      add(ledger, 'lost_removed', negated_read)
    else
      add(ledger, 'lost_added', read)
      if replaced ~= '0' then add(ledger, 'lost_added', '-' .. replaced) end
    end
  end
  return replaced
end
";

/// Creates the account unless it exists: a replica that starts later must not reset a running
/// account, and two replicas starting together must create it once. One script, so the balance
/// and its ledger are born together.
///
/// KEYS: balance, ledger. ARGV: initial balance. Returns 1 if it created the account.
const CREATE: &str = r"
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'initial_balance', ARGV[1])
return 1
";

/// The blind write of `unguarded`, `mutex`, `semaphore:N` and `lease`: `SET balance new GET` and
/// its ledger entry in one step, so a dropped request or a crash can never keep one without the
/// other, and the write learns exactly what it replaced. `optimistic` sends it inside its
/// `MULTI`/`EXEC`.
///
/// KEYS: balance, ledger, and the idempotency key and the generation if keyed. ARGV: new, read,
/// -read, kind, amount, and the key's time to live in ms if keyed. Returns the balance replaced,
/// or nil (nothing written) if the idempotency key already keeps an answer.
const OVERWRITE: &str = r"
if taken(KEYS[3], KEYS[4]) then return false end
local replaced = write(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
keep(KEYS[3], KEYS[4], ARGV[4] .. ' ' .. ARGV[5] .. ' 200 ' .. ARGV[1], ARGV[6])
return replaced
";

/// `atomic`: the funds check, the overflow check and the change in one step, so no other write can
/// come between the check and the change. `INCRBY`/`DECRBY` do the arithmetic in 64 bits.
///
/// KEYS: balance, ledger, and the idempotency key and the generation if keyed. ARGV: kind, amount,
/// and the key's time to live in ms if keyed. Returns `{outcome, balance}`: outcome `ok` (balance is the one written),
/// `insufficient` or `overflow` (balance is the one that refused, and nothing but the refusal
/// count was written), or `taken` (the idempotency key already keeps an answer; nothing written).
const ATOMIC: &str = r"
if taken(KEYS[3], KEYS[4]) then return {'taken', '0'} end
local balance = redis.call('GET', KEYS[1])
if not balance then return redis.error_reply('the balance key is missing') end
if ARGV[1] == 'withdrawal' then
  if below(balance, ARGV[2]) then
    redis.call('HINCRBY', KEYS[2], 'refused_count', '1')
    return {'insufficient', balance}
  end
  redis.call('DECRBY', KEYS[1], ARGV[2])
else
  -- INCRBY refuses, and writes nothing, when the sum would pass 2^63 - 1.
  local added = redis.pcall('INCRBY', KEYS[1], ARGV[2])
  if type(added) == 'table' then return {'overflow', balance} end
end
record(KEYS[2], ARGV[1], ARGV[2])
local written = redis.call('GET', KEYS[1])
keep(KEYS[3], KEYS[4], ARGV[1] .. ' ' .. ARGV[2] .. ' 200 ' .. written, ARGV[3])
return {'ok', written}
";

/// The fenced lease's grant: take the lock only if it is free, and hand out the next fencing token
/// with it. One step, so tokens increase in the order the lock is granted.
///
/// KEYS: lock, fence. ARGV: lease in milliseconds. Returns the token, or nil if the lock is held.
const ACQUIRE_FENCED: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
redis.call('INCR', KEYS[2])
local token = redis.call('GET', KEYS[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token
";

/// Releases a lock only if this request still holds it (compare-and-delete): after the lease ran
/// out another request may hold it, and a plain `DEL` would free their lock. One step, so the lock
/// cannot change hands between the compare and the delete.
///
/// KEYS: lock. ARGV: token. Returns 1 if it released the lock.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// The fenced read: the storage checks the token and remembers it, then reads, in one step. A
/// holder whose token is older than one the storage has seen is refused. Remembering the token at
/// the read is what fences out an older holder who has not written yet.
///
/// KEYS: balance, seen. ARGV: token. Returns `{'ok', balance}` or `{'fenced', highest seen}`.
const FENCED_READ: &str = r"
local seen = redis.call('GET', KEYS[2]) or '0'
if below(ARGV[1], seen) then return {'fenced', seen} end
redis.call('SET', KEYS[2], ARGV[1])
local balance = redis.call('GET', KEYS[1])
if not balance then return redis.error_reply('the balance key is missing') end
return {'ok', balance}
";

/// The fenced write: check the token against the highest the storage has seen, remember it, and
/// write with the ledger entry, in one step, so no newer holder can come between check and write.
///
/// KEYS: balance, ledger, seen, and the idempotency key and the generation if keyed. ARGV: token,
/// new, read, -read, kind, amount, and the key's time to live in ms if keyed. Returns `{'ok', replaced}`,
/// `{'fenced', highest seen}` or `{'taken', 0}` (nothing written).
const FENCED_WRITE: &str = r"
local seen = redis.call('GET', KEYS[3]) or '0'
if below(ARGV[1], seen) then return {'fenced', seen} end
if taken(KEYS[4], KEYS[5]) then return {'taken', '0'} end
redis.call('SET', KEYS[3], ARGV[1])
local replaced = write(KEYS[1], KEYS[2], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
keep(KEYS[4], KEYS[5], ARGV[5] .. ' ' .. ARGV[6] .. ' 200 ' .. ARGV[2], ARGV[7])
return {'ok', replaced}
";

/// `/reset`, for every replica at once: the balance, a fresh ledger, a fence bumped past every
/// token handed out so far, so a request still holding an old lease cannot write into the new run,
/// and a new generation, so every idempotency key is free again. One step, so no replica's
/// `/stats` sees a new balance with an old ledger.
///
/// KEYS: balance, ledger, fence, seen, generation. ARGV: balance.
const RESET: &str = r"
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'initial_balance', ARGV[1])
redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[4], redis.call('GET', KEYS[3]))
redis.call('INCR', KEYS[5])
return 1
";

/// Keeps a refusal's answer for an idempotency key, unless the key keeps one of this generation.
///
/// KEYS: the idempotency key, the generation. ARGV: the answer (`<kind> <amount> <status>
/// <balance>`), its time to live in ms. Returns 1 if it kept the answer.
const REMEMBER: &str = r"
if taken(KEYS[1], KEYS[2]) then return 0 end
keep(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return 1
";

fn with_prelude(body: &str) -> String {
    format!("{PRELUDE}{body}")
}

pub(super) static CREATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CREATE));
/// The source of the overwrite script, for `EVAL` inside `MULTI` (see `optimistic`).
pub(super) static OVERWRITE_SOURCE: LazyLock<String> = LazyLock::new(|| with_prelude(OVERWRITE));
pub(super) static OVERWRITE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&OVERWRITE_SOURCE));
pub(super) static ATOMIC_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&with_prelude(ATOMIC)));
pub(super) static ACQUIRE_FENCED_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(ACQUIRE_FENCED));
pub(super) static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));
pub(super) static FENCED_READ_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&with_prelude(FENCED_READ)));
pub(super) static FENCED_WRITE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&with_prelude(FENCED_WRITE)));
pub(super) static RESET_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RESET));
pub(super) static REMEMBER_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&with_prelude(REMEMBER)));

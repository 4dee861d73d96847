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
//! The guard against a Redis that lost writes ([`GUARD`]): the account's `writes` counter goes up
//! with every write (and every reset), its `generation` with every reset, and each replica
//! remembers the highest pair it has seen. Every script that reads or writes the balance is
//! wrapped in the guard, which refuses, before anything is written, when the account is missing
//! (Redis restarted without persistence) or its pair is below the replica's (Redis went back to an
//! older snapshot), and then marks the account `halted` with the reason, so that every replica
//! refuses it until an operator resets it. A reset moves the generation to Redis's clock in
//! milliseconds (or one past it), so a generation is never handed out twice, even after a rollback.
//!
//! The ledger is a hash of the [`crate::domain::ledger::Ledger`] fields. Counts are `HINCRBY` by one (2^63
//! operations would take longer than Redis lives). Sums of amounts can pass 2^63 in theory (deposit
//! and withdraw `i64::MAX / 2` back and forth), so each sum is two fields, `<sum>` and
//! `<sum>_carry`, worth `carry * 2^63 + sum`, exactly: the same `i128` totals the memory store keeps.

use std::sync::LazyLock;

use redis::Script;

/// Shared helpers, prepended to every script that writes the ledger.
const PRELUDE: &str = r"
-- The account's write counter, when the script is guarded: `record` bumps it.
local WRITES = nil

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
  if WRITES then redis.call('INCR', WRITES) end
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
/// An account marked halted is not created: it lost acknowledged writes, and re-creating it at
/// its opening balance would hide that; only a reset clears the mark.
///
/// KEYS: balance, ledger, writes, generation, halted. ARGV: initial balance. Returns `{created (1
/// or 0), generation, writes, why halted or ''}`.
const CREATE: &str = r"
local halted = redis.call('GET', KEYS[5])
local created = 0
if not halted and redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], 'initial_balance', ARGV[1])
  redis.call('INCR', KEYS[3])
  created = 1
end
return {created, redis.call('GET', KEYS[4]) or '0', redis.call('GET', KEYS[3]) or '0', halted or ''}
";

/// The guard every script that reads or writes the balance runs first (see the module's doc).
/// The first three keys (writes, generation, halted) and the first two arguments (the highest
/// generation and write count this replica has seen) are the guard's; the script's own keys and
/// arguments follow, as `K` and `A`. Answers `{'refused', why}` having written nothing but the
/// halted mark, or `{'ok', the script's answer, generation, writes}`.
const GUARD: &str = r"
WRITES = KEYS[1]
local GENERATION, HALTED = KEYS[2], KEYS[3]
local K, A = {}, {}
for i = 4, #KEYS do K[i - 3] = KEYS[i] end
for i = 3, #ARGV do A[i - 2] = ARGV[i] end
local why = redis.call('GET', HALTED)
if why then return {'refused', why} end
local generation = redis.call('GET', GENERATION) or '0'
local writes = redis.call('GET', WRITES) or '0'
if redis.call('EXISTS', K[1]) == 0 then
  why = 'vanished: its balance is missing from Redis, with every write since it was created'
elseif below(generation, ARGV[1]) or (generation == ARGV[1] and below(writes, ARGV[2])) then
  why = 'went back in time: Redis holds its write ' .. writes .. ' of generation ' .. generation ..
    ', but a server had already seen write ' .. ARGV[2] .. ' of generation ' .. ARGV[1]
end
if why then
  redis.call('SET', HALTED, why)
  return {'refused', why}
end
local answer = (function()
";

/// The end of a guarded script: its answer with the account's generation and write count.
const GUARD_END: &str = r"
end)()
if answer == nil then answer = false end
return {'ok', answer, redis.call('GET', GENERATION) or '0', redis.call('GET', WRITES) or '0'}
";

/// The balance, guarded. KEYS: balance. Returns the balance.
const READ: &str = r"
return redis.call('GET', K[1])
";

/// The balance and the ledger, read together, guarded. KEYS: balance, ledger. Returns `{balance,
/// the ledger's fields and values}`.
const LEDGER: &str = r"
return {redis.call('GET', K[1]), redis.call('HGETALL', K[2])}
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
if taken(K[3], K[4]) then return false end
local replaced = write(K[1], K[2], A[1], A[2], A[3], A[4], A[5])
keep(K[3], K[4], A[4] .. ' ' .. A[5] .. ' 200 ' .. A[1], A[6])
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
if taken(K[3], K[4]) then return {'taken', '0'} end
local balance = redis.call('GET', K[1])
if A[1] == 'withdrawal' then
  if below(balance, A[2]) then
    redis.call('HINCRBY', K[2], 'refused_count', '1')
    return {'insufficient', balance}
  end
  redis.call('DECRBY', K[1], A[2])
else
  -- INCRBY refuses, and writes nothing, when the sum would pass 2^63 - 1.
  local added = redis.pcall('INCRBY', K[1], A[2])
  if type(added) == 'table' then return {'overflow', balance} end
end
record(K[2], A[1], A[2])
local written = redis.call('GET', K[1])
keep(K[3], K[4], A[1] .. ' ' .. A[2] .. ' 200 ' .. written, A[3])
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
local seen = redis.call('GET', K[2]) or '0'
if below(A[1], seen) then return {'fenced', seen} end
redis.call('SET', K[2], A[1])
local balance = redis.call('GET', K[1])
return {'ok', balance}
";

/// The fenced write: check the token against the highest the storage has seen, remember it, and
/// write with the ledger entry, in one step, so no newer holder can come between check and write.
///
/// KEYS: balance, ledger, seen, and the idempotency key and the generation if keyed. ARGV: token,
/// new, read, -read, kind, amount, and the key's time to live in ms if keyed. Returns `{'ok', replaced}`,
/// `{'fenced', highest seen}` or `{'taken', 0}` (nothing written).
const FENCED_WRITE: &str = r"
local seen = redis.call('GET', K[3]) or '0'
if below(A[1], seen) then return {'fenced', seen} end
if taken(K[4], K[5]) then return {'taken', '0'} end
redis.call('SET', K[3], A[1])
local replaced = write(K[1], K[2], A[2], A[3], A[4], A[5], A[6])
keep(K[4], K[5], A[5] .. ' ' .. A[6] .. ' 200 ' .. A[2], A[7])
return {'ok', replaced}
";

/// `/reset`, for every replica at once: the balance, a fresh ledger, a fence bumped past every
/// token handed out so far, so a request still holding an old lease cannot write into the new run,
/// and a new generation, so every idempotency key is free again. One step, so no replica's
/// `/stats` sees a new balance with an old ledger.
///
/// It is also how an operator brings back an account the guard halted: it clears the mark, and
/// its generation, Redis's clock in milliseconds unless the count is past it, is above any a server
/// has seen before a rollback; the fence jumps to it too, above any token handed out before.
///
/// KEYS: balance, ledger, fence, seen, generation, writes, halted. ARGV: balance. Returns
/// `{generation, writes}`.
const RESET: &str = r"
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'initial_balance', ARGV[1])
local next = tostring(redis.call('INCR', KEYS[5]))
local time = redis.call('TIME')
local now = time[1] .. string.format('%03d', math.floor(tonumber(time[2]) / 1000))
if below(next, now) then redis.call('SET', KEYS[5], now) end
local generation = redis.call('GET', KEYS[5])
-- Tokens go past the generation too: a holder of a token handed out before a rollback cannot
-- write into the run that follows the reset.
local fence = tostring(redis.call('INCR', KEYS[3]))
if below(fence, generation) then redis.call('SET', KEYS[3], generation) end
redis.call('SET', KEYS[4], redis.call('GET', KEYS[3]))
redis.call('DEL', KEYS[7])
local writes = tostring(redis.call('INCR', KEYS[6]))
return {redis.call('GET', KEYS[5]), writes}
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

pub(super) fn with_prelude(body: &str) -> String {
    format!("{PRELUDE}{body}")
}

fn guarded(body: &str) -> String {
    format!("{PRELUDE}{GUARD}{body}{GUARD_END}")
}

pub(super) static CREATE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CREATE));
pub(super) static READ_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&guarded(READ)));
pub(super) static LEDGER_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&guarded(LEDGER)));
/// The source of the overwrite script, for `EVAL` inside `MULTI` (see `optimistic`).
pub(super) static OVERWRITE_SOURCE: LazyLock<String> = LazyLock::new(|| guarded(OVERWRITE));
pub(super) static OVERWRITE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&OVERWRITE_SOURCE));
pub(super) static ATOMIC_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&guarded(ATOMIC)));
pub(super) static ACQUIRE_FENCED_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(ACQUIRE_FENCED));
pub(super) static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));
pub(super) static FENCED_READ_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&guarded(FENCED_READ)));
pub(super) static FENCED_WRITE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&guarded(FENCED_WRITE)));
pub(super) static RESET_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&with_prelude(RESET)));
pub(super) static REMEMBER_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&with_prelude(REMEMBER)));

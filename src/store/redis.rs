//! [`RedisStore`]: challenges and rate limits shared by every instance, one Lua script (one
//! round trip, atomic) per operation.
//!
//! Layout, under a configurable prefix:
//! - `{prefix}c:{<account, 16 hex>}:<store key, 32 hex>`: a hash per challenge,
//!   `PEXPIRE`d when it can no longer matter (expiry plus [`RETAIN_AFTER_EXPIRY`], so
//!   `Expired` and `AlreadyUsed` stay distinguishable until then).
//! - `{prefix}f:{<account, 16 hex>}`: the account's consecutive failed verifications and
//!   when they are forgotten (`FailureCap::forget_after` after the last one). It shares its hash tag (the
//!   account) with the account's challenges, so one script checks a code and counts the
//!   failure atomically, on Redis Cluster too. An id whose account bytes were changed names
//!   another key and finds nothing.
//! - Limit state, one value per limit key (a GCRA arrival time, a budget's use, a guard's
//!   counts, a backoff streak), with a TTL after which it no longer matters. On one
//!   server every limit key shares one hash tag (`{prefix}{<prefix>limits}:<limit key>`),
//!   so one script decides a send's limits (and its account's failures) together and
//!   charges them only if all allow. On a cluster each key is its own slot
//!   (`{prefix}l:{<limit key>}`), so the limit work spreads over the primaries: one script
//!   per key, all sent at once, and the charges taken back when any refuses (the cluster
//!   `impl` block below says how, and what a shard failing mid-request does). Limit keys
//!   name numbers, users and client addresses by keyed fingerprints, never in clear.
//!
//! Records keep the destination sealed (`ChallengeRecord::sealed_destination`), never the
//! number in clear, so a dump of the store reveals no phone numbers.
//!
//! Times come from the service's [`Clock`](crate::Clock) as arguments, never from Redis'
//! own clock, so a `ManualClock` drives Redis exactly as it drives memory.
//!
//! Digest equality inside Lua is a plain string compare. Digests are keyed HMACs that a
//! client cannot choose, so its timing reveals nothing about the code.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};

use super::{
    CODES_PER_CHALLENGE, ChallengeRecord, FactorWrite, OtpStore, PendingRecord,
    RETAIN_AFTER_EXPIRY, SendAdmission, StepDecision, StoreError, StoredDestination, TotpFactor,
};
use crate::challenge::{
    AccountId, ChallengeId, Digest, NotPending, SealedDestination, VerifyOutcome,
};
use crate::clock::{Timestamp, duration_millis};
use crate::limit::{Admission, ConversionState, Counts, FailureCap, Limit, LimitKey, Rule};
use crate::message::{Channel, Locale, Purpose};

const INSERT: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'st', 'p', 'exp', ARGV[1], 'att', ARGV[2], 'p', ARGV[3],
  'ch', ARGV[4], 'lo', ARGV[5], 'dst', ARGV[6], 'd0', ARGV[7], 'fl', ARGV[9])
if ARGV[10] == '1' then redis.call('HSET', KEYS[1], 'sub', ARGV[11]) end
if ARGV[12] == '1' then redis.call('HSET', KEYS[1], 'ten', ARGV[13]) end
redis.call('PEXPIRE', KEYS[1], ARGV[8])
return 1
"#;

/// Shared state checks: returns a code (0 not found, 1 used, 2 expired, 3 exhausted) or the
/// fields for the caller. `owner` is the caller's tenant as `owner_arg` writes it; a
/// challenge of another tenant is not found.
const STATE: &str = r#"
local function state(key, now, owner)
  local h = redis.call('HMGET', key, 'st', 'exp', 'att', 'ten')
  if not h[1] then return 0 end
  local held = '0'
  if h[4] then held = '1' .. h[4] end
  if held ~= owner then return 0 end
  if h[1] == 'u' then return 1 end
  if now >= tonumber(h[2]) then return 2 end
  if tonumber(h[3]) <= 0 then return 3 end
  return -1
end
"#;

/// KEYS: challenge, account failures. ARGV: now, cap, forget-after ms, owner, candidates...
/// The failure count is a hash (`n`, and `u`: when it is forgotten, on the service's
/// clock); the key's own TTL only tidies up.
const CHECK: &str = r#"
local now = tonumber(ARGV[1])
local s = state(KEYS[1], now, ARGV[4])
if s >= 0 then return {s} end
local f = redis.call('HMGET', KEYS[2], 'n', 'u')
local failures = 0
if f[1] and tonumber(f[2]) > now then failures = tonumber(f[1]) end
if failures >= tonumber(ARGV[2]) then return {6} end
local h = redis.call('HMGET', KEYS[1], 'd0', 'd1', 'd2', 'p', 'sub')
local matched = false
for i = 1, 3 do
  if h[i] then
    for j = 5, #ARGV do
      if h[i] == ARGV[j] then matched = true end
    end
  end
end
if matched then
  redis.call('HSET', KEYS[1], 'st', 'u')
  redis.call('DEL', KEYS[2])
  if h[5] then return {4, h[4], 1, h[5]} end
  return {4, h[4], 0, ''}
end
-- Forgotten at the first whole second after now + forget-after, as in memory.
local forget_at = math.ceil((now + tonumber(ARGV[3])) / 1000) * 1000
redis.call('HSET', KEYS[2], 'n', failures + 1, 'u', forget_at)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {5, redis.call('HINCRBY', KEYS[1], 'att', -1)}
"#;

/// KEYS: challenge. ARGV: now, owner.
const PENDING: &str = r#"
local s = state(KEYS[1], tonumber(ARGV[1]), ARGV[2])
if s >= 0 then return {s} end
local h = redis.call('HMGET', KEYS[1], 'dst', 'ch', 'lo', 'p', 'exp', 'fl', 'sub', 'ten')
local reply = {-1, h[1], h[2], h[3], h[4], h[5], h[6], 0, '', 0, ''}
if h[7] then reply[8] = 1; reply[9] = h[7] end
if h[8] then reply[10] = 1; reply[11] = h[8] end
return reply
"#;

/// KEYS: challenge. ARGV: now, digest, owner.
const ADD_CODE: &str = r#"
local s = state(KEYS[1], tonumber(ARGV[1]), ARGV[3])
if s >= 0 then return s end
local h = redis.call('HMGET', KEYS[1], 'd0', 'd1')
if h[2] then redis.call('HSET', KEYS[1], 'd2', h[2]) end
redis.call('HSET', KEYS[1], 'd1', h[1], 'd0', ARGV[2])
return -1
"#;

/// The account's failure count is under its cap (`KEYS[2]`, `ARGV[1]` now, `ARGV[2]` the
/// cap) and its TOTP factor (`KEYS[1]`) exists with a secret (not a disable's marker);
/// else returns 2 (locked) or 3 (none).
macro_rules! totp_gate_lua {
    () => {
        r#"
local now = tonumber(ARGV[1])
local f = redis.call('HMGET', KEYS[2], 'n', 'u')
if f[1] and tonumber(f[2]) > now and tonumber(f[1]) >= tonumber(ARGV[2]) then return 2 end
local secret = redis.call('HGET', KEYS[1], 's')
if not secret or secret == '' then return 3 end
"#
    };
}

/// Accepts time step `ARGV[3]` once: 0 accepted, 1 replayed (not newer than the last).
const ACCEPT_STEP: &str = concat!(
    totp_gate_lua!(),
    r#"
local last = redis.call('HGET', KEYS[1], 'l')
if last and tonumber(last) >= tonumber(ARGV[3]) then return 1 end
redis.call('HSET', KEYS[1], 'l', ARGV[3])
redis.call('DEL', KEYS[2])
return 0
"#
);

/// Uses the first held of the recovery code fields `ARGV[3..]` once: 0 used now, 1 none
/// held (unknown, or used before).
const USE_RECOVERY: &str = concat!(
    totp_gate_lua!(),
    r#"
for i = 3, #ARGV do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('DEL', KEYS[2])
    return 0
  end
end
return 1
"#
);

/// One more failure on `KEYS[1]` (`ARGV[1]` now, `ARGV[2]` forget-after ms), as CHECK
/// counts them; returns the new count.
const COUNT_FAILURE: &str = r#"
local now = tonumber(ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'n', 'u')
local failures = 0
if f[1] and tonumber(f[2]) > now then failures = tonumber(f[1]) end
local forget_at = math.ceil((now + tonumber(ARGV[2])) / 1000) * 1000
redis.call('HSET', KEYS[1], 'n', failures + 1, 'u', forget_at)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return failures + 1
"#;

/// Writes the factor `KEYS[1]` unless `ARGV[1]` forbids it ('absent': only where there is
/// none; 'unconfirmed': not over a confirmed one; 'replace': always): sealed secret,
/// confirmed flag, last step ('' for none), then one field per recovery digest. 1 written,
/// 0 not.
const PUT_FACTOR: &str = r#"
if ARGV[1] == 'absent' and redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[1] == 'unconfirmed' and redis.call('HGET', KEYS[1], 'c') == '1' then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 's', ARGV[2], 'c', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'l', ARGV[4]) end
for i = 5, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], 1) end
return 1
"#;

/// Confirms and/or reseals a factor only if it still holds the secret the caller opened
/// (ARGV[1]); the last step and recovery codes stay as they are.
const UPDATE_FACTOR: &str = r#"
if redis.call('HGET', KEYS[1], 's') ~= ARGV[1] then return 0 end
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'c', '1') end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 's', ARGV[3]) end
return 1
"#;

/// The conversion guard's state moved on to `now`'s bucket (as `ConversionState::rolled`):
/// `bucket:sends:verified:previous sends:previous verified:held until` (a state written
/// before holds existed has five fields: not held).
macro_rules! roll_lua {
    () => {
        r#"
local function roll(raw, now, bucket_ms)
  local b, s, v, ps, pv, h = 0, 0, 0, 0, 0, 0
  if raw then
    local x1, x2, x3, x4, x5, x6 = string.match(raw, '^(%d+):(%d+):(%d+):(%d+):(%d+):?(%d*)$')
    b, s, v, ps, pv = tonumber(x1), tonumber(x2), tonumber(x3), tonumber(x4), tonumber(x5)
    h = tonumber(x6) or 0
  end
  local cur = math.floor(now / bucket_ms)
  if cur == b + 1 then
    ps, pv, s, v = s, v, 0, 0
  elseif cur ~= b then
    ps, pv, s, v = 0, 0, 0, 0
  end
  return cur, s, v, ps, pv, h
end
"#
    };
}

/// KEYS: the limits of one send, after the account's failures when gated. ARGV: now, the
/// failures that lock the account (0: no gate), then six numbers per limit (its rule and
/// the rule's settings). Decides all, then charges all only if every one allows. Returns
/// {0}, {-1} (the account is locked: nothing charged) or {refusing limit, wait}.
const THROTTLE: &str = concat!(
    roll_lua!(),
    r#"
local now = tonumber(ARGV[1])
-- A gate (one server only): KEYS[1] is the account's failures, ARGV[2] how many lock it.
local gate = tonumber(ARGV[2])
local base = 1
if gate > 0 then
  local f = redis.call('HMGET', KEYS[1], 'n', 'u')
  if f[1] and tonumber(f[2]) > now and tonumber(f[1]) >= gate then return {-1} end
  base = 2
end
local writes = {}
local olds = {}
for i = base, #KEYS do
  local a = 2 + (i - base) * 6
  local n = i - base + 1
  local kind = tonumber(ARGV[a + 1])
  local raw = redis.call('GET', KEYS[i])
  olds[n] = raw or ''
  if kind == 3 then
    local bucket_ms = tonumber(ARGV[a + 2])
    local allowance = tonumber(ARGV[a + 3])
    local floor = tonumber(ARGV[a + 4])
    local hold_ms = tonumber(ARGV[a + 5])
    local b, s, v, ps, pv, h = roll(raw, now, bucket_ms)
    local into = now % bucket_ms
    local weight = (bucket_ms - into) / bucket_ms
    local sends = s + ps * weight
    local verified = v + pv * weight
    local held = h > now
    local free = allowance
    if held then free = 1 end
    if verified * 1000 < (sends + 1 - free) * floor then return {n, bucket_ms - into} end
    if held then
      if sends + 1 >= allowance and verified * 1000 >= (sends + 1) * floor then
        h = 0
      else
        h = now + hold_ms
      end
    elseif verified * 1000 < (sends + 2 - allowance) * floor then
      h = now + hold_ms
    end
    writes[i] = {string.format('%d:%d:%d:%d:%d:%d', b, s + 1, v, ps, pv, h),
      math.max(2 * bucket_ms, h - now)}
  elseif kind == 2 then
    local cap = tonumber(ARGV[a + 2])
    local amount = tonumber(ARGV[a + 3])
    local resets_at = tonumber(ARGV[a + 4])
    local used = tonumber(raw or '0')
    local ttl = math.max(resets_at - now, 1)
    if used + amount > cap then return {n, ttl} end
    writes[i] = {string.format('%d', used + amount), ttl}
  elseif kind == 0 then
    local interval = tonumber(ARGV[a + 2])
    local tolerance = tonumber(ARGV[a + 3])
    local tat = tonumber(raw or ARGV[1])
    if tat < now then tat = now end
    local allow_at = tat - tolerance
    if allow_at > now then return {n, allow_at - now} end
    writes[i] = {string.format('%d', tat + interval), tat + interval - now}
  else
    local free = math.max(tonumber(ARGV[a + 2]), 1)
    local first = tonumber(ARGV[a + 3])
    local max = tonumber(ARGV[a + 4])
    local decay = math.max(tonumber(ARGV[a + 5]), 1)
    local jitter = tonumber(ARGV[a + 6])
    local level, next_at, last_at = 0, 0, 0
    if raw then
      local l, x, t = string.match(raw, '^(%d+):(%d+):(%d+)$')
      level, next_at, last_at = tonumber(l), tonumber(x), tonumber(t)
    end
    if next_at > now then return {n, next_at - now} end
    local forgotten = math.floor(math.max(now - last_at, 0) / decay)
    level = math.max(level - forgotten, 0) + 1
    local nominal = 0
    if level >= free then
      nominal = math.min(first * 2 ^ math.min(level - free, 31), max)
    end
    next_at = now + nominal + math.floor(nominal * jitter / 100000)
    local ttl = math.max(math.max(next_at, now + decay * level) - now, 1)
    writes[i] = {string.format('%d:%d:%d', level, next_at, now), ttl}
  end
end
for i = base, #KEYS do
  redis.call('SET', KEYS[i], writes[i][1], 'PX', string.format('%d', writes[i][2]))
end
-- The first limit's state before and after: what a refund on a cluster needs.
if writes[base] then return {0, olds[1], writes[base][1]} end
return {0}
"#
);

/// Counts one verification on each guard key: `ARGV[1]` now, `ARGV[1 + i]` key i's bucket.
const CREDIT: &str = concat!(
    roll_lua!(),
    r#"
local now = tonumber(ARGV[1])
for i = 1, #KEYS do
  local bucket_ms = tonumber(ARGV[i + 1])
  local b, s, v, ps, pv, h = roll(redis.call('GET', KEYS[i]), now, bucket_ms)
  redis.call('SET', KEYS[i], string.format('%d:%d:%d:%d:%d:%d', b, s, v + 1, ps, pv, h),
    'PX', string.format('%d', math.max(2 * bucket_ms, h - now)))
end
return 0
"#
);

/// Takes back one charge of the limits script (on a cluster, where each limit is charged
/// by a script of its own and a send another shard refused must leave nothing behind).
/// KEYS[1]: the limit. ARGV: the charge's now, its six numbers, then its state before
/// (empty: none) and after. A rate gives back one interval, a budget its amount, the guard
/// one send in the bucket it was counted in: exact, whatever was charged since. A backoff
/// streak is put back only if nothing changed it since (else it stays: one wait too many,
/// never one too few).
#[cfg(feature = "redis-cluster")]
const REFUND: &str = r#"
local now = tonumber(ARGV[1])
local kind = tonumber(ARGV[2])
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
if kind == 0 then
  local tat = tonumber(raw) - tonumber(ARGV[3])
  if tat <= now then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', string.format('%d', tat - now))
  end
elseif kind == 2 then
  local used = math.max(tonumber(raw) - tonumber(ARGV[4]), 0)
  redis.call('SET', KEYS[1], string.format('%d', used), 'KEEPTTL')
elseif kind == 3 then
  local x1, x2, x3, x4, x5, x6 = string.match(raw, '^(%d+):(%d+):(%d+):(%d+):(%d+):?(%d*)$')
  local b, s, v, ps, pv, h = tonumber(x1), tonumber(x2), tonumber(x3), tonumber(x4),
    tonumber(x5), tonumber(x6) or 0
  local charged = math.floor(now / tonumber(ARGV[3]))
  if b == charged then
    s = math.max(s - 1, 0)
  elseif b == charged + 1 then
    ps = math.max(ps - 1, 0)
  end
  redis.call('SET', KEYS[1], string.format('%d:%d:%d:%d:%d:%d', b, s, v, ps, pv, h), 'KEEPTTL')
elseif raw == ARGV[9] then
  if ARGV[8] == '' then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], ARGV[8], 'KEEPTTL')
  end
end
return 1
"#;

/// A connection to one Redis server, or to a Redis Cluster (feature `redis-cluster`).
/// Both are multiplexed, connect lazily and reconnect by themselves.
#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Fail fast inside a login request rather than hang on a dead server.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// An [`OtpStore`] on Redis (standalone or cluster), for services with several instances.
///
/// The connection is multiplexed, made on first use and remade by itself: with Redis down
/// (at start or later) every operation fails with [`StoreError::Unavailable`] (never a
/// verified outcome), and the same store works once Redis is back.
#[derive(Clone)]
pub struct RedisStore {
    connection: Connection,
    prefix: String,
    insert: Script,
    check: Script,
    pending: Script,
    add_code: Script,
    throttle: Script,
    #[cfg(feature = "redis-cluster")]
    refund: Script,
    credit: Script,
    accept_step: Script,
    use_recovery: Script,
    count_failure: Script,
    put_factor: Script,
    update_factor: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(Box::new(error))
}

/// A brace in the prefix would become (part of) the hash tag and scatter a script's keys
/// over cluster slots.
fn check_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.contains(['{', '}']) {
        return Err(StoreError::Config(
            "a Redis key prefix may not contain '{' or '}'",
        ));
    }
    Ok(())
}

impl RedisStore {
    /// A store on the Redis at `url` (`redis://127.0.0.1:6379/0`, `rediss://…` needs TLS
    /// support in the `redis` crate), namespacing every key under `prefix` (e.g. `"otp:"`
    /// or a tenant). It connects on first use, so a service starts even while Redis is
    /// down; its operations fail until Redis is up.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] if the URL is invalid; [`StoreError::Config`] for a
    /// prefix with a brace (braces make Redis Cluster hash tags).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        check_prefix(prefix)?;
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection =
            ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        Ok(Self::with_connection(
            Connection::Single(connection),
            prefix,
        ))
    }

    /// Connects to a Redis Cluster through any of its `nodes` (`redis://127.0.0.1:7000`,
    /// ...), namespacing every key under `prefix`. Each operation touches keys of one hash
    /// slot: a challenge and its account's failure count share the account's tag, and all
    /// rate-limit keys share one tag (so one node holds every limit).
    ///
    /// # Errors
    /// As [`RedisStore::connect`].
    #[cfg(feature = "redis-cluster")]
    pub async fn connect_cluster(nodes: &[&str], prefix: &str) -> Result<Self, StoreError> {
        check_prefix(prefix)?;
        let client = redis::cluster::ClusterClient::builder(nodes.iter().copied())
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .retries(1)
            .build()
            .map_err(unavailable)?;
        let config = redis::cluster::ClusterConfig::new()
            .set_connection_timeout(CONNECT_TIMEOUT)
            .set_response_timeout(RESPONSE_TIMEOUT);
        let connection = client.get_pending_async_connection_with_config(config);
        Ok(Self::with_connection(
            Connection::Cluster(connection),
            prefix,
        ))
    }

    fn with_connection(connection: Connection, prefix: &str) -> Self {
        Self {
            connection,
            prefix: prefix.to_owned(),
            insert: Script::new(INSERT),
            check: Script::new(&format!("{STATE}{CHECK}")),
            pending: Script::new(&format!("{STATE}{PENDING}")),
            add_code: Script::new(&format!("{STATE}{ADD_CODE}")),
            throttle: Script::new(THROTTLE),
            #[cfg(feature = "redis-cluster")]
            refund: Script::new(REFUND),
            credit: Script::new(CREDIT),
            accept_step: Script::new(ACCEPT_STEP),
            use_recovery: Script::new(USE_RECOVERY),
            count_failure: Script::new(COUNT_FAILURE),
            put_factor: Script::new(PUT_FACTOR),
            update_factor: Script::new(UPDATE_FACTOR),
        }
    }

    fn challenge_key(&self, id: &ChallengeId) -> String {
        format!(
            "{}c:{{{}}}:{}",
            self.prefix,
            id.account().to_hex(),
            id.store_key_hex()
        )
    }

    fn failures_key(&self, account: AccountId) -> String {
        format!("{}f:{{{}}}", self.prefix, account.to_hex())
    }

    /// Under the account's hash tag, beside its failure count: one script sees both.
    fn totp_key(&self, account: AccountId) -> String {
        format!("{}t:{{{}}}", self.prefix, account.to_hex())
    }

    async fn totp_gate(
        &self,
        script: &Script,
        account: AccountId,
        arguments: &[String],
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<StepDecision, StoreError> {
        let reply: i64 = script
            .key(self.totp_key(account))
            .key(self.failures_key(account))
            .arg(now.as_millis())
            .arg(cap.max_consecutive.get())
            .arg(arguments)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        match reply {
            0 => Ok(StepDecision::Accepted),
            1 => Ok(StepDecision::Replayed),
            2 => Ok(StepDecision::AccountLocked),
            3 => Ok(StepDecision::NotEnrolled),
            _ => Err(StoreError::Corrupt("unknown TOTP reply")),
        }
    }

    fn limit_key(&self, key: &LimitKey) -> String {
        match self.connection {
            // One hash tag: one script decides a send's limits together.
            Connection::Single(_) => format!("{p}{{{p}limits}}:{}", key.as_str(), p = self.prefix),
            // Each key its own slot: the cluster's shards share the limit work.
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(_) => format!("{}l:{{{}}}", self.prefix, key.as_str()),
        }
    }

    /// Whether each limit key is its own slot (a cluster), so no script sees two.
    fn spread(&self) -> bool {
        !matches!(self.connection, Connection::Single(_))
    }

    /// `keys` in groups that share a slot: all of them on one server, one each on a
    /// cluster.
    fn by_slot<'k, K>(&self, keys: &'k [K]) -> Vec<&'k [K]> {
        if self.spread() {
            keys.chunks(1).collect()
        } else {
            vec![keys]
        }
    }

    /// The limits script, gated by the account's failures when `gate` is given.
    async fn run_throttle(
        &self,
        gate: Option<(AccountId, u32)>,
        limits: &[Limit],
        now: Timestamp,
    ) -> Result<SendAdmission, StoreError> {
        Ok(match self.throttle_script(gate, limits, now).await? {
            ThrottleReply::Charged { .. } => SendAdmission::Limits(Admission::Allowed),
            ThrottleReply::Locked => SendAdmission::AccountLocked,
            ThrottleReply::Refused { index, wait_ms } => {
                let refused = limits
                    .get(index)
                    .ok_or(StoreError::Corrupt("limit index out of range"))?;
                SendAdmission::Limits(Admission::Limited {
                    limit: refused.key.kind(),
                    retry_after: Duration::from_millis(wait_ms),
                    index,
                })
            }
        })
    }

    async fn throttle_script(
        &self,
        gate: Option<(AccountId, u32)>,
        limits: &[Limit],
        now: Timestamp,
    ) -> Result<ThrottleReply, StoreError> {
        let mut invocation = self.throttle.prepare_invoke();
        invocation.arg(now.as_millis());
        match gate {
            Some((account, max_failures)) => {
                invocation
                    .key(self.failures_key(account))
                    .arg(max_failures.max(1));
            }
            None => {
                invocation.arg(0);
            }
        }
        for limit in limits {
            invocation.key(self.limit_key(&limit.key));
            for number in rule_args(&limit.rule) {
                invocation.arg(number);
            }
        }
        let reply: Vec<Value> = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        let bytes = |value: Option<&Value>| match value {
            Some(Value::BulkString(bytes)) => bytes.clone(),
            _ => Vec::new(),
        };
        match reply.first().map(int).transpose()? {
            Some(0) => Ok(ThrottleReply::Charged {
                before: bytes(reply.get(1)),
                after: bytes(reply.get(2)),
            }),
            Some(-1) => Ok(ThrottleReply::Locked),
            Some(index) if reply.len() == 2 => Ok(ThrottleReply::Refused {
                index: usize::try_from(index - 1)
                    .map_err(|_| StoreError::Corrupt("limit index out of range"))?,
                wait_ms: u64::try_from(int(&reply[1])?).unwrap_or(0),
            }),
            _ => Err(StoreError::Corrupt("unknown throttle reply")),
        }
    }
}

/// What the limits script did.
enum ThrottleReply {
    /// Every limit allowed and was charged; the first limit's state before (empty: none)
    /// and after (what a refund on a cluster needs).
    #[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
    Charged { before: Vec<u8>, after: Vec<u8> },
    /// The gate's account is locked: nothing charged.
    Locked,
    /// The limit at `index` refused: nothing charged.
    Refused { index: usize, wait_ms: u64 },
}

/// On a cluster every limit key is its own slot, so a send's limits are decided by one
/// script per key, all sent at once (one round trip, every shard in parallel). Each
/// script decides and charges its key atomically, so no limit is ever exceeded: a charge
/// that is taken back later only made a concurrent send see one more. When any key
/// refuses, or its shard fails, the charges the others made are taken back before the
/// refusal (or the error) is returned. A shard that fails mid-request fails the send
/// (closed); a charge that cannot be taken back then stays until its key expires, which
/// refuses sooner, never later.
#[cfg(feature = "redis-cluster")]
impl RedisStore {
    async fn charge_each(
        &self,
        limits: &[Limit],
        now: Timestamp,
    ) -> Vec<Result<ThrottleReply, StoreError>> {
        join_all(
            limits
                .iter()
                .map(|limit| self.throttle_script(None, std::slice::from_ref(limit), now)),
        )
        .await
    }

    /// What one charge per limit adds up to: allowed when every one was charged and
    /// `keep` holds; otherwise every charge is taken back, and the first refusal or store
    /// error in the order given is returned.
    async fn settle(
        &self,
        limits: &[Limit],
        outcomes: Vec<Result<ThrottleReply, StoreError>>,
        now: Timestamp,
        keep: bool,
    ) -> Result<Admission, StoreError> {
        let mut verdict = None;
        let mut charged = Vec::new();
        for (index, (outcome, limit)) in outcomes.into_iter().zip(limits).enumerate() {
            match outcome {
                Ok(ThrottleReply::Charged { before, after }) => {
                    charged.push((limit, before, after))
                }
                Ok(ThrottleReply::Refused { wait_ms, .. }) => {
                    verdict.get_or_insert(Ok(Admission::Limited {
                        limit: limit.key.kind(),
                        retry_after: Duration::from_millis(wait_ms),
                        index,
                    }));
                }
                Ok(ThrottleReply::Locked) => {
                    verdict.get_or_insert(Err(StoreError::Corrupt("unknown throttle reply")));
                }
                Err(error) => {
                    verdict.get_or_insert(Err(error));
                }
            }
        }
        if verdict.is_none() && keep {
            return Ok(Admission::Allowed);
        }
        let refunds = charged
            .iter()
            .map(|(limit, before, after)| self.refund(limit, before, after, now));
        for result in join_all(refunds).await {
            if let Err(error) = result {
                tracing::warn!(%error, "a limit charge could not be taken back: it stays until its key expires");
            }
        }
        verdict.unwrap_or(Ok(Admission::Allowed))
    }

    async fn refund(
        &self,
        limit: &Limit,
        before: &[u8],
        after: &[u8],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut invocation = self.refund.key(self.limit_key(&limit.key));
        invocation.arg(now.as_millis());
        for number in rule_args(&limit.rule) {
            invocation.arg(number);
        }
        let _: i64 = invocation
            .arg(before)
            .arg(after)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

/// The six numbers the scripts take per limit: its rule (0 rate, 1 backoff, 2 budget, 3
/// conversion), then the rule's settings.
fn rule_args(rule: &Rule) -> [u64; 6] {
    // Lua numbers are doubles: exact to 2^53, far above any setting.
    let exact = |n: u64| n.min(1 << 53);
    match *rule {
        Rule::Rate(quota) => {
            let interval = duration_millis(quota.refill_interval()).max(1);
            let tolerance = duration_millis(quota.period()).saturating_sub(interval);
            [0, interval, tolerance, 0, 0, 0]
        }
        Rule::Backoff {
            schedule,
            jitter_permille,
        } => [
            1,
            u64::from(schedule.free_sends),
            duration_millis(schedule.first_wait),
            duration_millis(schedule.max_wait),
            duration_millis(schedule.decay),
            u64::from(u32::from(schedule.jitter_percent) * jitter_permille.min(1000)),
        ],
        Rule::Conversion(rule) => [
            3,
            rule.bucket_millis.max(1),
            exact(rule.allowance),
            u64::from(rule.floor_permille),
            exact(rule.hold_millis),
            0,
        ],
        Rule::Budget {
            cap,
            amount,
            resets_at_millis,
        } => [2, exact(cap), exact(amount), resets_at_millis, 0, 0],
    }
}

/// 32 bytes from 64 lowercase hex digits.
fn unhex32(hex: &[u8]) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

fn encode_digest(digest: &Digest) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(digest.key_id().0);
    bytes.extend_from_slice(digest.as_bytes());
    bytes
}

fn int(value: &Value) -> Result<i64, StoreError> {
    match value {
        Value::Int(n) => Ok(*n),
        Value::BulkString(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(StoreError::Corrupt("expected a number")),
        _ => Err(StoreError::Corrupt("expected a number")),
    }
}

fn text(value: &Value) -> Result<String, StoreError> {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes.clone()).map_err(|_| StoreError::Corrupt("expected text"))
        }
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Int(n) => Ok(n.to_string()),
        _ => Err(StoreError::Corrupt("expected text")),
    }
}

fn tag(value: &Value) -> Result<u8, StoreError> {
    u8::try_from(int(value)?).map_err(|_| StoreError::Corrupt("tag out of range"))
}

fn not_pending(code: i64) -> Result<NotPending, StoreError> {
    match code {
        0 => Ok(NotPending::NotFound),
        1 => Ok(NotPending::AlreadyUsed),
        2 => Ok(NotPending::Expired),
        3 => Ok(NotPending::AttemptsExhausted),
        _ => Err(StoreError::Corrupt("unknown state code")),
    }
}

/// The caller's tenant as the scripts compare it with a record's `ten` field: `0` for
/// none, else `1` and the tenant (so no tenant name can pass for "none").
fn owner_arg(tenant: Option<&str>) -> Vec<u8> {
    match tenant {
        None => b"0".to_vec(),
        Some(tenant) => {
            let mut owner = Vec::with_capacity(tenant.len() + 1);
            owner.push(b'1');
            owner.extend_from_slice(tenant.as_bytes());
            owner
        }
    }
}

#[async_trait]
impl OtpStore for RedisStore {
    async fn insert(&self, challenge: ChallengeRecord, now: Timestamp) -> Result<(), StoreError> {
        let retain_until = challenge.expires_at.saturating_add(RETAIN_AFTER_EXPIRY);
        let ttl = retain_until
            .as_millis()
            .saturating_sub(now.as_millis())
            .max(1);
        let flags = u8::from(challenge.client_ip_given) | u8::from(challenge.context_bound) << 1;
        let optional = |value: Option<String>| match value {
            Some(value) => ("1", value),
            None => ("0", String::new()),
        };
        let (has_subject, subject) = optional(challenge.subject);
        let (has_tenant, tenant) = optional(challenge.tenant);
        let inserted: i64 = self
            .insert
            .key(self.challenge_key(&challenge.id))
            .arg(challenge.expires_at.as_millis())
            .arg(challenge.attempts_left)
            .arg(challenge.purpose.to_tag())
            .arg(challenge.channel.to_tag())
            .arg(challenge.locale.to_tag())
            .arg(challenge.sealed_destination.as_bytes())
            .arg(encode_digest(&challenge.digest))
            .arg(ttl)
            .arg(flags)
            .arg(has_subject)
            .arg(subject)
            .arg(has_tenant)
            .arg(tenant)
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        if inserted == 1 {
            Ok(())
        } else {
            Err(StoreError::Duplicate)
        }
    }

    async fn check(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        candidates: &[Digest],
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<VerifyOutcome, StoreError> {
        let mut invocation = self.check.key(self.challenge_key(id));
        invocation
            .key(self.failures_key(id.account()))
            .arg(now.as_millis())
            .arg(cap.max_consecutive.get())
            .arg(duration_millis(cap.forget_after).max(1))
            .arg(owner_arg(tenant));
        for candidate in candidates {
            invocation.arg(encode_digest(candidate));
        }
        let reply: Vec<Value> = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        let code = int(reply.first().ok_or(StoreError::Corrupt("empty reply"))?)?;
        let field = |i: usize| reply.get(i).ok_or(StoreError::Corrupt("short reply"));
        Ok(match code {
            0..=3 => not_pending(code)?.into(),
            4 => {
                let purpose =
                    Purpose::from_tag(tag(field(1)?)?).ok_or(StoreError::Corrupt("purpose"))?;
                let subject = if int(field(2)?)? == 1 {
                    Some(text(field(3)?)?)
                } else {
                    None
                };
                VerifyOutcome::Verified { purpose, subject }
            }
            5 => VerifyOutcome::Mismatch {
                attempts_left: u8::try_from(int(field(1)?)?.max(0)).unwrap_or(0),
            },
            6 => VerifyOutcome::AccountLocked,
            _ => return Err(StoreError::Corrupt("unknown check reply")),
        })
    }

    async fn pending(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        now: Timestamp,
    ) -> Result<Result<PendingRecord, NotPending>, StoreError> {
        let reply: Vec<Value> = self
            .pending
            .key(self.challenge_key(id))
            .arg(now.as_millis())
            .arg(owner_arg(tenant))
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        let code = int(reply.first().ok_or(StoreError::Corrupt("empty reply"))?)?;
        if code >= 0 {
            return Ok(Err(not_pending(code)?));
        }
        let field = |i: usize| reply.get(i).ok_or(StoreError::Corrupt("short reply"));
        let optional = |flag: usize| -> Result<Option<String>, StoreError> {
            Ok(if int(field(flag)?)? == 1 {
                Some(text(field(flag + 1)?)?)
            } else {
                None
            })
        };
        let destination = match field(1)? {
            Value::BulkString(bytes) => SealedDestination::from_bytes(bytes.clone()),
            _ => return Err(StoreError::Corrupt("expected a sealed destination")),
        };
        let flags = int(field(6)?)?;
        Ok(Ok(PendingRecord {
            destination: StoredDestination::Sealed(destination),
            channel: Channel::from_tag(tag(field(2)?)?).ok_or(StoreError::Corrupt("channel"))?,
            locale: Locale::from_tag(tag(field(3)?)?).ok_or(StoreError::Corrupt("locale"))?,
            purpose: Purpose::from_tag(tag(field(4)?)?).ok_or(StoreError::Corrupt("purpose"))?,
            expires_at: Timestamp::from_millis(
                u64::try_from(int(field(5)?)?).map_err(|_| StoreError::Corrupt("expiry"))?,
            ),
            subject: optional(7)?,
            tenant: optional(9)?,
            client_ip_given: flags & 1 != 0,
            context_bound: flags & 2 != 0,
        }))
    }

    async fn add_code(
        &self,
        id: &ChallengeId,
        tenant: Option<&str>,
        digest: Digest,
        now: Timestamp,
    ) -> Result<Result<(), NotPending>, StoreError> {
        // The script keeps d0..d2: the newest three.
        debug_assert_eq!(CODES_PER_CHALLENGE, 3);
        let code: i64 = self
            .add_code
            .key(self.challenge_key(id))
            .arg(now.as_millis())
            .arg(encode_digest(&digest))
            .arg(owner_arg(tenant))
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        if code >= 0 {
            return Ok(Err(not_pending(code)?));
        }
        Ok(Ok(()))
    }

    async fn release_limits(&self, keys: &[LimitKey]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        // One DEL per slot (every key on one server), all sent at once.
        let deletes = self.by_slot(keys).into_iter().map(|keys| async move {
            let mut del = redis::cmd("DEL");
            for key in keys {
                del.arg(self.limit_key(key));
            }
            del.query_async::<i64>(&mut self.connection.clone())
                .await
                .map_err(unavailable)
        });
        for deleted in join_all(deletes).await {
            deleted?;
        }
        Ok(())
    }

    async fn remove(&self, id: &ChallengeId) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("DEL")
            .arg(self.challenge_key(id))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn throttle(&self, limits: &[Limit], now: Timestamp) -> Result<Admission, StoreError> {
        if limits.is_empty() {
            return Ok(Admission::Allowed);
        }
        #[cfg(feature = "redis-cluster")]
        if self.spread() {
            let outcomes = self.charge_each(limits, now).await;
            return self.settle(limits, outcomes, now, true).await;
        }
        match self.run_throttle(None, limits, now).await? {
            SendAdmission::Limits(admission) => Ok(admission),
            SendAdmission::AccountLocked => Err(StoreError::Corrupt("unknown throttle reply")),
        }
    }

    async fn admit_send(
        &self,
        account: AccountId,
        max_failures: u32,
        limits: &[Limit],
        now: Timestamp,
    ) -> Result<SendAdmission, StoreError> {
        match self.connection {
            // One script reads the failures and decides the limits: keys of any slot may
            // meet in one script on one server.
            Connection::Single(_) => {
                self.run_throttle(Some((account, max_failures)), limits, now)
                    .await
            }
            // On a cluster the account's failures and every limit are read at once, each
            // from its own slot; a locked account's charges are taken back.
            #[cfg(feature = "redis-cluster")]
            Connection::Cluster(_) => {
                let (failures, outcomes) = futures_util::future::join(
                    self.failures(account, now),
                    self.charge_each(limits, now),
                )
                .await;
                let locked = match failures {
                    Ok(failures) => failures >= max_failures,
                    Err(error) => {
                        self.settle(limits, outcomes, now, false).await.ok();
                        return Err(error);
                    }
                };
                if locked {
                    self.settle(limits, outcomes, now, false).await.ok();
                    return Ok(SendAdmission::AccountLocked);
                }
                Ok(SendAdmission::Limits(
                    self.settle(limits, outcomes, now, true).await?,
                ))
            }
        }
    }

    async fn credit_conversions(
        &self,
        keys: &[(LimitKey, u64)],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        // One script per slot (every key on one server), all sent at once.
        let credits = self.by_slot(keys).into_iter().map(|keys| async move {
            let mut invocation = self.credit.prepare_invoke();
            invocation.arg(now.as_millis());
            for (key, bucket_millis) in keys {
                invocation
                    .key(self.limit_key(key))
                    .arg((*bucket_millis).max(1));
            }
            invocation
                .invoke_async::<i64>(&mut self.connection.clone())
                .await
                .map_err(unavailable)
        });
        for credited in join_all(credits).await {
            credited?;
        }
        Ok(())
    }

    async fn conversion_counts(
        &self,
        key: &LimitKey,
        bucket_millis: u64,
        now: Timestamp,
    ) -> Result<Counts, StoreError> {
        let raw: Option<String> = redis::cmd("GET")
            .arg(self.limit_key(key))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        let Some(raw) = raw else {
            return Ok(Counts::default());
        };
        let numbers: Vec<u64> = raw.split(':').filter_map(|n| n.parse().ok()).collect();
        // Five fields: written before holds existed, not held.
        let (counts, held_until) = match numbers[..] {
            [a, b, c, d, e] => ([a, b, c, d, e], 0),
            [a, b, c, d, e, held] => ([a, b, c, d, e], held),
            _ => return Err(StoreError::Corrupt("conversion state")),
        };
        let [bucket, sends, verified, previous_sends, previous_verified] = counts;
        let state = ConversionState {
            bucket,
            sends,
            verified,
            previous_sends,
            previous_verified,
            held_until,
        };
        Ok(state.rolled(bucket_millis, now).counts(bucket_millis, now))
    }

    async fn budget_used(
        &self,
        keys: &[LimitKey],
        _now: Timestamp,
    ) -> Result<Vec<u64>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // One MGET per slot (every key on one server). The key expires with its day, so a
        // missing one has used nothing.
        // All sent at once; the answers come back in the keys' order.
        let reads = self.by_slot(keys).into_iter().map(|keys| async move {
            let mut mget = redis::cmd("MGET");
            for key in keys {
                mget.arg(self.limit_key(key));
            }
            mget.query_async::<Vec<Option<String>>>(&mut self.connection.clone())
                .await
                .map_err(unavailable)
        });
        let mut raw: Vec<Option<String>> = Vec::with_capacity(keys.len());
        for values in join_all(reads).await {
            raw.extend(values?);
        }
        raw.into_iter()
            .map(|value| match value {
                None => Ok(0),
                Some(text) => text
                    .parse::<u64>()
                    .map_err(|_| StoreError::Corrupt("budget use")),
            })
            .collect()
    }

    async fn totp_factor(&self, account: AccountId) -> Result<Option<TotpFactor>, StoreError> {
        let fields: Vec<(Vec<u8>, Vec<u8>)> = redis::cmd("HGETALL")
            .arg(self.totp_key(account))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        if fields.is_empty() {
            return Ok(None);
        }
        let mut factor = TotpFactor::default();
        for (name, value) in fields {
            match name.as_slice() {
                b"s" => factor.sealed_secret = value,
                b"c" => factor.confirmed = value == b"1",
                b"l" => {
                    factor.last_step = std::str::from_utf8(&value)
                        .ok()
                        .and_then(|v| v.parse().ok());
                }
                other => {
                    let digest = other
                        .strip_prefix(b"r:")
                        .and_then(unhex32)
                        .ok_or(StoreError::Corrupt("TOTP factor field"))?;
                    factor.recovery.push(digest);
                }
            }
        }
        Ok(Some(factor))
    }

    async fn totp_secret(&self, account: AccountId) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
        let (sealed, confirmed): (Option<Vec<u8>>, Option<Vec<u8>>) = redis::cmd("HMGET")
            .arg(self.totp_key(account))
            .arg("s")
            .arg("c")
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(sealed.map(|sealed| (sealed, confirmed.as_deref() == Some(b"1"))))
    }

    async fn put_totp_factor(
        &self,
        account: AccountId,
        factor: TotpFactor,
        when: FactorWrite,
    ) -> Result<bool, StoreError> {
        let mut invocation = self.put_factor.prepare_invoke();
        invocation
            .key(self.totp_key(account))
            .arg(match when {
                FactorWrite::IfAbsent => "absent",
                FactorWrite::UnlessConfirmed => "unconfirmed",
                FactorWrite::Replace => "replace",
            })
            .arg(factor.sealed_secret)
            .arg(if factor.confirmed { "1" } else { "0" })
            .arg(factor.last_step.map(|s| s.to_string()).unwrap_or_default());
        for digest in &factor.recovery {
            invocation.arg(format!("r:{}", crate::limit::hex(digest)));
        }
        let written: i64 = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(written == 1)
    }

    async fn remove_totp_factor(&self, account: AccountId) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("DEL")
            .arg(self.totp_key(account))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn update_totp_factor(
        &self,
        account: AccountId,
        expected_secret: &[u8],
        confirm: bool,
        resealed: Option<Vec<u8>>,
    ) -> Result<bool, StoreError> {
        let updated: i64 = self
            .update_factor
            .key(self.totp_key(account))
            .arg(expected_secret)
            .arg(if confirm { "1" } else { "0" })
            .arg(resealed.unwrap_or_default())
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(updated == 1)
    }

    async fn accept_totp_step(
        &self,
        account: AccountId,
        step: u64,
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<StepDecision, StoreError> {
        self.totp_gate(&self.accept_step, account, &[step.to_string()], cap, now)
            .await
    }

    async fn use_recovery_code(
        &self,
        account: AccountId,
        digests: &[[u8; 32]],
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<StepDecision, StoreError> {
        let fields: Vec<String> = digests
            .iter()
            .map(|digest| format!("r:{}", crate::limit::hex(digest)))
            .collect();
        self.totp_gate(&self.use_recovery, account, &fields, cap, now)
            .await
    }

    async fn count_failure(
        &self,
        account: AccountId,
        cap: FailureCap,
        now: Timestamp,
    ) -> Result<u32, StoreError> {
        let count: i64 = self
            .count_failure
            .key(self.failures_key(account))
            .arg(now.as_millis())
            .arg(duration_millis(cap.forget_after).max(1))
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    async fn destination(&self, id: &ChallengeId) -> Result<Option<StoredDestination>, StoreError> {
        let sealed: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(self.challenge_key(id))
            .arg("dst")
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(sealed.map(|bytes| StoredDestination::Sealed(SealedDestination::from_bytes(bytes))))
    }

    async fn failures(&self, account: AccountId, now: Timestamp) -> Result<u32, StoreError> {
        let (count, forget_at): (Option<u64>, Option<u64>) = redis::cmd("HMGET")
            .arg(self.failures_key(account))
            .arg("n")
            .arg("u")
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(match (count, forget_at) {
            (Some(count), Some(forget_at)) if forget_at > now.as_millis() => {
                u32::try_from(count).unwrap_or(u32::MAX)
            }
            _ => 0,
        })
    }

    async fn reset_failures(&self, account: AccountId) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("DEL")
            .arg(self.failures_key(account))
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.connection.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

//! [`RedisHead`]: the head port over a Redis (or Valkey) cluster, redis-rs async cluster.
//!
//! Key layout (docs/TEAM-NOTES.md, fixed): the head of a window is the LIST
//! `{b<bucket>}:h:<tenant>:<series>:<window_start>` — element 0 the head header, each
//! further element the block of one append (head format v2, `carat_core::head`); a v1
//! head (a string of 16-byte entries, written by a v1 writer) under the same key is read
//! as it is and moved into a list by the next append. The dirty set of a bucket is the
//! ZSET `{b<bucket>}:dirty` with members
//! `<tenant>:<series>:<window_start>` scored by flush-due time. Every key of a bucket
//! carries the hash tag `{b<bucket>}`, so they share one slot and one Lua script can
//! append to many windows and mark them dirty atomically.
//!
//! Every call is wrapped in `tokio::time::timeout(command_timeout_ms)`: redis-rs
//! cluster connections can hang on some failures (a node that stops answering
//! mid-failover), and a hung writer blocks its shard. Timeouts, I/O errors, MOVED/ASK
//! storms, CLUSTERDOWN, TRYAGAIN, LOADING and READONLY are retryable; anything else
//! (a script error, a wrong type) is fatal.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use carat_core::config::RedisConfig;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{
    MultipleNodeRoutingInfo, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use redis::{Cmd, ErrorKind, FromRedisValue, RedisError, ToRedisArgs, Value};

pub use crate::head_keys::{
    bucket_tag, catalog_key, catalog_member, dirty_key, dirty_member, head_key, parse_dirty_member,
};
use crate::head_keys::{check_appends, nonce};
use crate::trace::Service;
use carat_core::head::{self as head_format, Identity};
use carat_core::SeriesKey;

use crate::ports::{Head, HeadAppend, WindowRef};
use crate::secrets::Secret;
use crate::StoreError;

const SERVICE: &str = "redis";

/// Appends to the windows of one bucket and marks them dirty, atomically.
/// KEYS[1] = dirty set, KEYS[1+i] = head key of window i; ARGV[1] = the header of a key
/// this call creates (its nonce; count 0); ARGV[1+5(i-1)+1..=1+5i] = block, points in it,
/// expire_at, flush_due, member of window i; ARGV[#ARGV - 1], ARGV[#ARGV] = now and limit
/// of the due windows to return. Returns each window's appended count, then (limit > 0)
/// the members of the bucket's dirty windows due at or before now, at most limit, as
/// `ZRANGEBYSCORE` gives them after the appends ([`Head::due`] in the same round trip).
/// A list gets the block pushed and its header's count raised (same size: LSET rewrites
/// it in place). A v1 string (written by a v1 writer) becomes a list whose first block
/// holds its entries unchanged (kind 1): the rolling-deploy migration. `RPUSH` grows the
/// list by the element — no doubling as `APPEND` does — which is most of what v2 saves.
/// `ZADD LT` keeps the earliest due time a window was given (a plain ZADD would let a
/// later append postpone a flush that was already due); a new member is always added.
const APPEND_LUA: &str = r"
local fresh = ARGV[1]
local out = {}
for i = 1, #KEYS - 1 do
  local k = KEYS[i + 1]
  local a = 1 + (i - 1) * 5
  local n = tonumber(ARGV[a + 2])
  local t = redis.call('TYPE', k).ok
  local count
  if t == 'list' then
    local h = redis.call('LINDEX', k, 0)
    if (not h) or #h ~= 16 or string.sub(h, 3, 4) ~= '\255\255' then
      return redis.error_reply('ERR head ' .. k .. ' has no v2 header')
    end
    count = (struct.unpack('<I4', h, 5) + n) % 4294967296
    redis.call('LSET', k, 0, string.sub(h, 1, 4) .. struct.pack('<I4', count) .. string.sub(h, 9))
    redis.call('RPUSH', k, ARGV[a + 1])
  elseif t == 'string' or t == 'none' then
    local v1 = ''
    if t == 'string' then
      v1 = redis.call('GET', k)
      redis.call('DEL', k)
    end
    count = (math.floor(#v1 / 16) + n) % 4294967296
    local h = string.sub(fresh, 1, 4) .. struct.pack('<I4', count) .. string.sub(fresh, 9)
    if #v1 > 0 then
      redis.call('RPUSH', k, h, '\1' .. v1, ARGV[a + 1])
    else
      redis.call('RPUSH', k, h, ARGV[a + 1])
    end
  else
    return redis.error_reply('WRONGTYPE head ' .. k .. ' is a ' .. t)
  end
  redis.call('EXPIREAT', k, ARGV[a + 3])
  redis.call('ZADD', KEYS[1], 'LT', ARGV[a + 4], ARGV[a + 5])
  out[i] = count
end
local limit = tonumber(ARGV[#ARGV])
if limit > 0 then
  local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[#ARGV - 1], 'LIMIT', 0, limit)
  for j = 1, #due do
    out[#KEYS - 1 + j] = due[j]
  end
end
return out
";

/// Reads a window's head whatever its format: the list's elements (v2), the string
/// (v1), or nil. One script, so a v1 key moved into a list between two commands cannot
/// make a read fail. KEYS[1] = head key.
const READ_LUA: &str = r"
local t = redis.call('TYPE', KEYS[1]).ok
if t == 'list' then
  return redis.call('LRANGE', KEYS[1], 0, -1)
elseif t == 'string' then
  return redis.call('GET', KEYS[1])
elseif t == 'none' then
  return false
end
return redis.error_reply('WRONGTYPE head ' .. KEYS[1] .. ' is a ' .. t)
";

/// Clears a dirty mark only if the head still has the identity the flush read
/// (`carat_core::head::identity`): the same v2 header (every append raises its count; a
/// re-created key has another nonce), the same v1 length, or still no key.
/// KEYS[1] = head key, KEYS[2] = dirty set; ARGV[1] = `v2`, `v1` or `none`,
/// ARGV[2] = the header or the length, ARGV[3] = member.
const SETTLE_LUA: &str = r"
local t = redis.call('TYPE', KEYS[1]).ok
local same
if ARGV[1] == 'v2' then
  same = t == 'list' and redis.call('LINDEX', KEYS[1], 0) == ARGV[2]
elseif ARGV[1] == 'v1' then
  same = t == 'string' and redis.call('STRLEN', KEYS[1]) == tonumber(ARGV[2])
else
  same = t == 'none'
end
if same then
  redis.call('ZREM', KEYS[2], ARGV[3])
  return 1
end
return 0
";

/// Adds catalog markers to a bucket's marker set for a day and sets its expiry.
/// KEYS[1] = marker set; ARGV[1] = expire_at, ARGV[2..] = members.
const MARK_LUA: &str = r"
for i = 2, #ARGV do
  redis.call('SADD', KEYS[1], ARGV[i])
end
redis.call('EXPIREAT', KEYS[1], ARGV[1])
return #ARGV - 1
";

/// A Lua script run with EVALSHA, falling back to EVAL (which also caches it on that
/// node) on NOSCRIPT: a node that restarted or a replica promoted after the script was
/// loaded does not know it. The SHA comes from SCRIPT LOAD at connect, so no SHA-1 code
/// is needed here; if that failed (a node down), the script runs with EVAL.
#[derive(Debug, Clone)]
struct Lua {
    src: &'static str,
    sha: Option<String>,
}

/// Keys and arguments of one script call.
#[derive(Default)]
struct ScriptCall {
    keys: Vec<String>,
    args: Vec<Vec<u8>>,
}

impl ScriptCall {
    fn key(&mut self, k: String) -> &mut Self {
        self.keys.push(k);
        self
    }

    fn arg<T: ToRedisArgs>(&mut self, v: T) -> &mut Self {
        self.args.extend(v.to_redis_args());
        self
    }

    fn cmd(&self, verb: &str, script: &str) -> Cmd {
        let mut c = redis::cmd(verb);
        c.arg(script).arg(self.keys.len());
        for k in &self.keys {
            c.arg(k);
        }
        for a in &self.args {
            c.arg(a.as_slice());
        }
        c
    }
}

/// The cluster hash slot of every key of `bucket`: CRC16 (XMODEM) of its hash tag's
/// content `b<bucket>`, mod 16384, as Redis computes it (checked against
/// `CLUSTER KEYSLOT` in the tests).
#[must_use]
pub fn bucket_slot(bucket: u32) -> u16 {
    let mut crc: u16 = 0;
    for &b in format!("b{bucket}").as_bytes() {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16_384
}

/// What `/health` reports about the head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisHealth {
    /// Masters that answered PING.
    pub masters: usize,
    /// `cluster_known_nodes` of the node asked (masters and replicas).
    pub known_nodes: usize,
    /// `cluster_state` (`ok` or `fail`).
    pub state: String,
}

/// The head over a Redis cluster. Cheap to share: one multiplexed connection per node,
/// cloned per call.
#[derive(Clone)]
pub struct RedisHead {
    conn: ClusterConnection,
    timeout: Duration,
    /// Replicas that must acknowledge an append (`WAIT`), 0: do not wait.
    replica_acks: u32,
    replica_ack_timeout_ms: u64,
    /// `redis.key_prefix`: put before every key, so deployments sharing one cluster keep
    /// apart (it comes before the hash tag, so a key's slot does not change).
    prefix: String,
    append: Lua,
    read: Lua,
    settle: Lua,
    mark: Lua,
}

impl std::fmt::Debug for RedisHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHead")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Whether a Redis error is worth retrying (the cluster is moving or unreachable).
fn classify(op: &'static str, e: RedisError) -> StoreError {
    let retryable = e.is_timeout()
        || e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_cluster_error()
        || matches!(
            e.kind(),
            ErrorKind::ClusterDown
                | ErrorKind::TryAgain
                | ErrorKind::MasterDown
                | ErrorKind::BusyLoadingError
                | ErrorKind::ReadOnly
                | ErrorKind::Moved
                | ErrorKind::Ask
                | ErrorKind::ClusterConnectionNotFound
        );
    let detail = e.to_string();
    let out = if retryable {
        StoreError::retryable(SERVICE, op, detail)
    } else {
        StoreError::fatal(SERVICE, op, detail)
    };
    out.with_source(e)
}

impl RedisHead {
    /// Connects to the cluster through its seed nodes (`cfg.nodes`), bounded by
    /// `cfg.connect_timeout_ms`.
    ///
    /// # Errors
    /// Retryable if the cluster cannot be reached in time; fatal for a bad node URL.
    pub async fn connect(cfg: &RedisConfig) -> Result<Self, StoreError> {
        Self::connect_with_password(cfg, None).await
    }

    /// [`RedisHead::connect`] with an AUTH password (ElastiCache's AUTH token). A
    /// `rediss://` node URL makes every connection TLS (rustls, the system's root
    /// certificates).
    ///
    /// # Errors
    /// As [`RedisHead::connect`].
    pub async fn connect_with_password(
        cfg: &RedisConfig,
        password: Option<&Secret>,
    ) -> Result<Self, StoreError> {
        let timeout = Duration::from_millis(cfg.command_timeout_ms.max(1));
        let connect_timeout = Duration::from_millis(cfg.connect_timeout_ms.max(1));
        let mut builder = ClusterClientBuilder::new(cfg.nodes.clone())
            .connection_timeout(connect_timeout)
            .response_timeout(timeout);
        if let Some(password) = password {
            builder = builder.password(password.expose().to_string());
        }
        let client = builder
            .build()
            .map_err(|e| StoreError::fatal(SERVICE, "connect", e.to_string()))?;
        let conn = tokio::time::timeout(connect_timeout, client.get_async_connection())
            .await
            .map_err(|_| {
                StoreError::retryable(
                    SERVICE,
                    "connect",
                    format!("no answer from {:?} within {connect_timeout:?}", cfg.nodes),
                )
            })?
            .map_err(|e| classify("connect", e))?;
        let mut head = Self {
            conn,
            timeout,
            replica_acks: cfg.replica_acks,
            replica_ack_timeout_ms: cfg.replica_ack_timeout_ms,
            prefix: cfg.key_prefix.clone(),
            append: Lua {
                src: APPEND_LUA,
                sha: None,
            },
            read: Lua {
                src: READ_LUA,
                sha: None,
            },
            settle: Lua {
                src: SETTLE_LUA,
                sha: None,
            },
            mark: Lua {
                src: MARK_LUA,
                sha: None,
            },
        };
        head.append.sha = head.load(APPEND_LUA).await;
        head.read.sha = head.load(READ_LUA).await;
        head.settle.sha = head.load(SETTLE_LUA).await;
        head.mark.sha = head.load(MARK_LUA).await;
        Ok(head)
    }

    /// `key` in this head's namespace (`redis.key_prefix`).
    fn k(&self, key: String) -> String {
        if self.prefix.is_empty() {
            key
        } else {
            format!("{}{key}", self.prefix)
        }
    }

    /// SCRIPT LOAD on every node; `None` (EVAL from then on) if a node did not take it.
    async fn load(&self, src: &str) -> Option<String> {
        let mut conn = self.conn.clone();
        match self
            .call(
                "script_load",
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(src)
                    .query_async(&mut conn),
            )
            .await
        {
            Ok(sha) => Some(sha),
            Err(e) => {
                tracing::warn!(error = %e, "SCRIPT LOAD failed; head scripts will run with EVAL");
                None
            }
        }
    }

    /// Runs a script: EVALSHA, then EVAL if the node does not know the script; timed as
    /// one call ([`crate::trace`]).
    async fn eval<T: FromRedisValue>(
        &self,
        op: &'static str,
        script: &Lua,
        call: &ScriptCall,
    ) -> Result<T, StoreError> {
        crate::trace::timed(Service::Redis, op, self.eval_untimed(op, script, call)).await
    }

    async fn eval_untimed<T: FromRedisValue>(
        &self,
        op: &'static str,
        script: &Lua,
        call: &ScriptCall,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        if let Some(sha) = &script.sha {
            let cmd = call.cmd("EVALSHA", sha);
            match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if e.kind() == ErrorKind::NoScriptError => {}
                Ok(Err(e)) => return Err(classify(op, e)),
                Err(_) => {
                    return Err(StoreError::retryable(
                        SERVICE,
                        op,
                        format!("no answer within {:?}", self.timeout),
                    ))
                }
            }
        }
        self.call_untimed(op, call.cmd("EVAL", script.src).query_async(&mut conn))
            .await
    }

    /// Runs one Redis call under the command timeout, timed ([`crate::trace`]).
    async fn call<T, Fut>(&self, op: &'static str, fut: Fut) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, RedisError>>,
    {
        crate::trace::timed(Service::Redis, op, self.call_untimed(op, fut)).await
    }

    async fn call_untimed<T, Fut>(&self, op: &'static str, fut: Fut) -> Result<T, StoreError>
    where
        Fut: Future<Output = Result<T, RedisError>>,
    {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(classify(op, e)),
            Err(_) => Err(StoreError::retryable(
                SERVICE,
                op,
                format!("no answer within {:?}", self.timeout),
            )),
        }
    }

    /// The windows of `bucket`'s due members; a member carat did not write is removed
    /// (best effort), so it cannot block the bucket's due list forever.
    async fn due_windows(&self, bucket: u32, members: Vec<Vec<u8>>) -> Vec<WindowRef> {
        let mut out = Vec::with_capacity(members.len());
        for m in members {
            if let Some(w) = parse_dirty_member(bucket, &m) {
                out.push(w);
            } else {
                // Not something carat wrote: drop it so it does not block the bucket's
                // due list forever. Best effort; a failure here changes nothing.
                tracing::warn!(
                    bucket,
                    member = %String::from_utf8_lossy(&m),
                    "corrupt dirty-set member removed"
                );
                // The key is built only here: this runs for every bucket of every batch,
                // and a corrupt member is rare.
                let key = self.k(dirty_key(bucket));
                let mut conn = self.conn.clone();
                let removed: Result<i64, _> = self
                    .call(
                        "due",
                        redis::cmd("ZREM").arg(&key).arg(&m).query_async(&mut conn),
                    )
                    .await;
                if let Err(e) = removed {
                    tracing::warn!(bucket, error = %e, "could not remove corrupt dirty-set member");
                }
            }
        }
        out
    }

    /// Waits until `replica_acks` replicas of the master of `bucket`'s slot hold every
    /// write this client sent it (`WAIT`, on the connection the append used), so that a
    /// master dying right after the append cannot take it along: the replica promoted
    /// in its place has it. Fewer acknowledgements in time is a retryable error: the
    /// writer appends again (harmless) rather than count the batch stored.
    async fn wait_for_replicas(&self, bucket: u32) -> Result<(), StoreError> {
        if self.replica_acks == 0 {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
            bucket_slot(bucket),
            SlotAddr::Master,
        )));
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(self.replica_acks).arg(self.replica_ack_timeout_ms);
        // WAIT blocks up to its own timeout: give the call that much more.
        let limit = self.timeout + Duration::from_millis(self.replica_ack_timeout_ms);
        let acked = match tokio::time::timeout(limit, conn.route_command(&cmd, route)).await {
            Ok(Ok(v)) => i64::from_redis_value(&v).map_err(|e| classify("wait", e))?,
            Ok(Err(e)) => return Err(classify("wait", e)),
            Err(_) => {
                return Err(StoreError::retryable(
                    SERVICE,
                    "wait",
                    format!("no answer within {limit:?}"),
                ))
            }
        };
        if acked < i64::from(self.replica_acks) {
            return Err(StoreError::retryable(
                SERVICE,
                "wait",
                format!(
                    "{acked} of {} replicas acknowledged bucket {bucket} within {} ms",
                    self.replica_acks, self.replica_ack_timeout_ms
                ),
            ));
        }
        Ok(())
    }

    /// PINGs every master and reads the cluster state, for carat-local's `/health`.
    ///
    /// # Errors
    /// Retryable if a master does not answer in time.
    pub async fn health(&self) -> Result<RedisHealth, StoreError> {
        let mut conn = self.conn.clone();
        let pongs = self
            .call(
                "health",
                conn.route_command(
                    &redis::cmd("PING"),
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None)),
                ),
            )
            .await?;
        let masters = match pongs {
            Value::Map(m) => m.len(),
            _ => 1,
        };
        let mut conn = self.conn.clone();
        let info: String = self
            .call(
                "health",
                redis::cmd("CLUSTER").arg("INFO").query_async(&mut conn),
            )
            .await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        };
        Ok(RedisHealth {
            masters,
            known_nodes: field("cluster_known_nodes")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            state: field("cluster_state").unwrap_or_default(),
        })
    }

    /// Bytes Redis uses for a window's head key (MEMORY USAGE, every element counted),
    /// `None` if absent. For the "≤ 16 bytes/point" benchmark.
    ///
    /// # Errors
    /// As any Redis call.
    pub async fn memory_usage(&self, window: &WindowRef) -> Result<Option<u64>, StoreError> {
        let mut conn = self.conn.clone();
        self.call(
            "memory_usage",
            redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(self.k(head_key(window)))
                .arg("SAMPLES")
                .arg(0)
                .query_async(&mut conn),
        )
        .await
    }

    /// The hash slot of a key (CLUSTER KEYSLOT), for tests of the key layout.
    ///
    /// # Errors
    /// As any Redis call.
    pub async fn keyslot(&self, key: &str) -> Result<u16, StoreError> {
        let mut conn = self.conn.clone();
        self.call(
            "keyslot",
            redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(key)
                .query_async(&mut conn),
        )
        .await
    }

    /// Deletes a window's head key and its dirty mark (tests and tools; the flusher
    /// lets head keys expire instead).
    ///
    /// # Errors
    /// As any Redis call.
    pub async fn forget(&self, window: &WindowRef) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.call(
            "forget",
            redis::pipe()
                .atomic()
                .del(self.k(head_key(window)))
                .ignore()
                .zrem(self.k(dirty_key(window.bucket)), dirty_member(window))
                .ignore()
                .query_async::<()>(&mut conn),
        )
        .await
    }
}

#[async_trait]
impl Head for RedisHead {
    async fn append(&self, bucket: u32, appends: &[HeadAppend]) -> Result<Vec<u64>, StoreError> {
        Ok(self.append_and_due(bucket, appends, 0, 0).await?.0)
    }

    async fn append_and_due(
        &self,
        bucket: u32,
        appends: &[HeadAppend],
        now: i64,
        limit: usize,
    ) -> Result<(Vec<u64>, Vec<WindowRef>), StoreError> {
        if appends.is_empty() {
            return Ok((Vec::new(), self.due(bucket, now, limit).await?));
        }
        let points = check_appends(SERVICE, bucket, appends)?;
        let mut call = ScriptCall::default();
        call.key(self.k(dirty_key(bucket)));
        for a in appends {
            call.key(self.k(head_key(&a.window)));
        }
        let fresh = head_format::Header {
            appended: 0,
            nonce: nonce(),
        };
        call.arg(fresh.encode().as_slice());
        for (a, n) in appends.iter().zip(points) {
            call.arg(a.block.as_slice())
                .arg(n)
                .arg(a.expire_at)
                .arg(a.flush_due)
                .arg(dirty_member(&a.window));
        }
        call.arg(now).arg(limit);
        let mut out: Vec<Value> = self.eval("append", &self.append, &call).await?;
        self.wait_for_replicas(bucket).await?;
        let bad = |what: String| StoreError::fatal(SERVICE, "append", what);
        if out.len() < appends.len() || out.len() - appends.len() > limit {
            return Err(bad(format!(
                "script returned {} values for {} windows and at most {limit} due",
                out.len(),
                appends.len()
            )));
        }
        let members = out.split_off(appends.len());
        let counts = out
            .into_iter()
            .map(|v| match v {
                Value::Int(n) => u64::try_from(n).map_err(|_| bad(format!("count {n}"))),
                other => Err(bad(format!("a count that is not an integer: {other:?}"))),
            })
            .collect::<Result<Vec<u64>, _>>()?;
        let members = members
            .into_iter()
            .map(|v| match v {
                Value::BulkString(m) => Ok(m),
                other => Err(bad(format!("a due member that is not a string: {other:?}"))),
            })
            .collect::<Result<Vec<Vec<u8>>, _>>()?;
        Ok((counts, self.due_windows(bucket, members).await))
    }

    async fn read(&self, window: &WindowRef) -> Result<Vec<u8>, StoreError> {
        let mut call = ScriptCall::default();
        call.key(self.k(head_key(window)));
        let value: Value = self.eval("read", &self.read, &call).await?;
        let bad = |what: &str| {
            StoreError::fatal(
                SERVICE,
                "read",
                format!("head {}@{}: {what}", window.key, window.start),
            )
        };
        match value {
            Value::Nil => Ok(Vec::new()),
            Value::BulkString(v1) => Ok(v1),
            Value::Array(elements) => {
                let mut parts = Vec::with_capacity(elements.len());
                for e in elements {
                    match e {
                        Value::BulkString(b) => parts.push(b),
                        _ => return Err(bad("a list element that is not a string")),
                    }
                }
                let Some((header, blocks)) = parts.split_first() else {
                    return Ok(Vec::new());
                };
                Ok(head_format::assemble(
                    header,
                    blocks.iter().map(Vec::as_slice),
                ))
            }
            _ => Err(bad("an answer that is neither a list nor a string")),
        }
    }

    async fn due(&self, bucket: u32, now: i64, limit: usize) -> Result<Vec<WindowRef>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = self.k(dirty_key(bucket));
        let mut conn = self.conn.clone();
        let members: Vec<Vec<u8>> = self
            .call(
                "due",
                redis::cmd("ZRANGEBYSCORE")
                    .arg(&key)
                    .arg("-inf")
                    .arg(now)
                    .arg("LIMIT")
                    .arg(0)
                    .arg(limit)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(self.due_windows(bucket, members).await)
    }

    async fn settle(&self, window: &WindowRef, read: &[u8]) -> Result<bool, StoreError> {
        let identity = head_format::identity(read).map_err(|e| {
            StoreError::fatal(
                SERVICE,
                "settle",
                format!("head {}@{}: {e}", window.key, window.start),
            )
        })?;
        let mut call = ScriptCall::default();
        call.key(self.k(head_key(window)))
            .key(self.k(dirty_key(window.bucket)));
        match identity {
            Identity::V2 { header } => call.arg("v2").arg(header.as_slice()),
            Identity::V1 { len } => call.arg("v1").arg(len),
            Identity::Absent => call.arg("none").arg(0),
        };
        call.arg(dirty_member(window));
        let settled: i64 = self.eval("settle", &self.settle, &call).await?;
        Ok(settled == 1)
    }

    async fn catalog_unmarked(
        &self,
        bucket: u32,
        day: i64,
        series: &[SeriesKey],
    ) -> Result<Vec<bool>, StoreError> {
        if series.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("SMISMEMBER");
        cmd.arg(self.k(catalog_key(bucket, day)));
        for k in series {
            cmd.arg(catalog_member(k));
        }
        let mut conn = self.conn.clone();
        let marked: Vec<i64> = self
            .call("catalog_unmarked", cmd.query_async(&mut conn))
            .await?;
        if marked.len() != series.len() {
            return Err(StoreError::fatal(
                SERVICE,
                "catalog_unmarked",
                format!(
                    "SMISMEMBER answered {} flags for {} series",
                    marked.len(),
                    series.len()
                ),
            ));
        }
        Ok(marked.into_iter().map(|m| m == 0).collect())
    }

    async fn catalog_mark(
        &self,
        bucket: u32,
        day: i64,
        series: &[SeriesKey],
        expire_at: i64,
    ) -> Result<(), StoreError> {
        if series.is_empty() {
            return Ok(());
        }
        let mut call = ScriptCall::default();
        call.key(self.k(catalog_key(bucket, day))).arg(expire_at);
        for k in series {
            call.arg(catalog_member(k));
        }
        let _: i64 = self.eval("catalog_mark", &self.mark, &call).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carat_core::{SeriesKey, SeriesName, Tenant};

    fn window() -> WindowRef {
        WindowRef {
            bucket: 17,
            key: SeriesKey::new(
                Tenant::default_tenant(),
                SeriesName::parse("host.a1.cpu-user", "name").expect("valid"),
            ),
            start: 86_400,
        }
    }

    #[test]
    fn keys_follow_the_layout() {
        let w = window();
        assert_eq!(head_key(&w), "{b17}:h:default:host.a1.cpu-user:86400");
        assert_eq!(dirty_key(17), "{b17}:dirty");
        assert_eq!(dirty_member(&w), "default:host.a1.cpu-user:86400");
        assert_eq!(bucket_tag(17), "{b17}");
        assert_eq!(catalog_key(17, 86_400), "{b17}:c:86400");
        assert_eq!(catalog_member(&w.key), "default:host.a1.cpu-user");
    }

    #[test]
    fn members_parse_back_and_corrupt_ones_do_not() {
        let w = window();
        assert_eq!(parse_dirty_member(17, dirty_member(&w).as_bytes()), Some(w));
        let neg = "t:s:-60";
        assert_eq!(
            parse_dirty_member(1, neg.as_bytes()).map(|w| w.start),
            Some(-60)
        );
        for bad in [
            &b"default:cpu"[..],
            b"default:cpu:x",
            b":cpu:1",
            b"default::1",
            b"def ault:cpu:1",
            b"default:c{p}u:1",
            b"\xff:cpu:1",
            b"",
        ] {
            assert_eq!(parse_dirty_member(1, bad), None, "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_member_parses_without_panicking(
            bucket in proptest::prelude::any::<u32>(),
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
        ) {
            let _ = parse_dirty_member(bucket, &bytes);
        }

        #[test]
        fn valid_members_round_trip(
            tenant in "[A-Za-z0-9._-]{1,64}",
            series in "[A-Za-z0-9._-]{1,255}",
            start in proptest::prelude::any::<i64>(),
            bucket in proptest::prelude::any::<u32>(),
        ) {
            let w = WindowRef {
                bucket,
                key: SeriesKey::new(Tenant::parse(&tenant).unwrap(), SeriesName::parse(&series, "name").unwrap()),
                start,
            };
            proptest::prop_assert_eq!(parse_dirty_member(bucket, dirty_member(&w).as_bytes()), Some(w));
        }
    }

    #[test]
    fn errors_classify() {
        let io = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "x",
        ));
        assert!(classify("op", io).is_retryable());
        let down = RedisError::from((ErrorKind::ClusterDown, "CLUSTERDOWN"));
        assert!(classify("op", down).is_retryable());
        let wrong = RedisError::from((ErrorKind::TypeError, "WRONGTYPE"));
        assert!(!classify("op", wrong).is_retryable());
    }
}

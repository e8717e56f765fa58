"""The Lua scripts ``RedisStore`` merges changes with, atomically, on the Redis server.

Each merges one change into what Redis holds (cooldowns only grow, a strike escalates once
per event), sets the record's expiry and publishes the merged result on the store's
channel; ``register`` reports a disagreement between processes. Also the key names that
``failover status`` reads without a store.
"""

from __future__ import annotations

__all__ = ["FOREVER", "SCRIPTS", "rpm_key"]

FOREVER = 1e18
"""A wall-clock time standing for "until enabled again" (Lua has no inf)."""


def rpm_key(prefix: str, name: str, identity: str) -> str:
    """The Redis key of a profile's uses in the last minute (``failover status`` reads it).

    ``identity`` is :meth:`RedisStore.identity`, the last part of the profile's own key.
    """
    return f"{prefix}:rpm:{name}:{identity}"


# One profile's shared state: a hash {status, until, strikes, error, fp, provider, routing}.
# ARGV: op, status, until, strikes, struck, error, now, fp, provider, origin, seq, at, grace,
# name, id
_PROFILE_SCRIPT = """
local k = KEYS[1]
local op, status, untl = ARGV[1], ARGV[2], tonumber(ARGV[3])
local strikes, struck, err, now = tonumber(ARGV[4]), ARGV[5] == '1', ARGV[6], tonumber(ARGV[7])
local old_status = redis.call('HGET', k, 'status') or 'available'
local old_until = tonumber(redis.call('HGET', k, 'until') or '0')
local old_strikes = tonumber(redis.call('HGET', k, 'strikes') or '0')
local resting = old_status ~= 'available' and old_until > now
local new_status, new_until, new_strikes = old_status, old_until, old_strikes
if op == 'cool' then
  if (not resting) or untl > old_until then
    new_status, new_until = status, untl
    if err ~= '' then redis.call('HSET', k, 'error', err) end
  end
  if struck and not resting then
    new_strikes = math.max(old_strikes + 1, strikes)
  else
    new_strikes = math.max(old_strikes, strikes)
  end
elseif op == 'heal' then
  new_status, new_until, new_strikes = 'available', 0, 0
  redis.call('HDEL', k, 'error')
elseif op == 'recover' then
  if old_status == 'cooling_down' or not resting then
    new_status, new_until, new_strikes = 'available', 0, 0
  end
end
redis.call('HSET', k, 'status', new_status, 'until', new_until, 'strikes', new_strikes,
  'fp', ARGV[8], 'provider', ARGV[9])
local ttl = tonumber(ARGV[13])
if new_status ~= 'available' and new_until > now then
  ttl = ttl + math.min(new_until - now, 7 * 86400)
end
redis.call('PEXPIRE', k, math.floor(ttl * 1000))
redis.call('PUBLISH', KEYS[2], cjson.encode({k = 'p', name = ARGV[14], id = ARGV[15],
  status = new_status, ['until'] = new_until, strikes = new_strikes, fp = ARGV[8],
  error = redis.call('HGET', k, 'error') or '', origin = ARGV[10], seq = ARGV[11],
  at = ARGV[12]}))
return new_status
"""

# One breaker's rest: a hash {until, strikes}. ARGV: until, strikes, force, now, origin, seq,
# at, provider, base_url, model
_BREAKER_SCRIPT = """
local k = KEYS[1]
local untl, strikes, force, now = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] == '1',
  tonumber(ARGV[4])
local old_until = tonumber(redis.call('HGET', k, 'until') or '0')
local old_strikes = tonumber(redis.call('HGET', k, 'strikes') or '0')
local new_until, new_strikes = old_until, math.max(old_strikes, strikes)
if untl > now then
  new_until = math.max(old_until, untl)
elseif force or old_until <= now then
  new_until = 0
  if force then new_strikes = 0 end
end
if new_until > now then
  redis.call('HSET', k, 'until', new_until, 'strikes', new_strikes)
  redis.call('PEXPIRE', k, math.floor((new_until - now + 600) * 1000))
else
  redis.call('DEL', k)
end
redis.call('PUBLISH', KEYS[2], cjson.encode({k = 'b', ['until'] = new_until,
  strikes = new_strikes, force = ARGV[3], origin = ARGV[5], seq = ARGV[6], at = ARGV[7],
  provider = ARGV[8], base_url = ARGV[9], model = ARGV[10]}))
return tostring(new_until)
"""

# One use of an rpm-limited key. ARGV: now, member, name, origin, at, fp, id
_USE_SCRIPT = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - 60)
redis.call('PEXPIRE', KEYS[1], 61000)
redis.call('PUBLISH', KEYS[2], cjson.encode({k = 'u', name = ARGV[3], t = ARGV[1],
  origin = ARGV[4], seq = ARGV[2], at = ARGV[5], fp = ARGV[6], id = ARGV[7]}))
return redis.call('ZCARD', KEYS[1])
"""

# A profile's registration: routing fields and fingerprint; reports a disagreement with
# another process (a process changing its own routing is no disagreement): other routing
# fields for the same record, or the same name and key at another base URL (then every
# process with that name and key is told on the channel).
# KEYS: the record, the base URLs of this name and key, the channel.
# ARGV: fp, provider, routing, grace, origin, endpoint, name
_REGISTER_SCRIPT = """
local k, seen = KEYS[1], KEYS[2]
local routing, by = redis.call('HGET', k, 'routing'), redis.call('HGET', k, 'routing_by')
local verdict = 'ok'
if routing and routing ~= ARGV[3] and by ~= ARGV[5] then
  verdict = 'routing'
else
  redis.call('HSET', k, 'fp', ARGV[1], 'provider', ARGV[2], 'routing', ARGV[3],
    'routing_by', ARGV[5])
  if redis.call('HGET', k, 'status') == false then
    redis.call('HSET', k, 'status', 'available', 'until', 0, 'strikes', 0)
  end
end
local grace = math.floor(tonumber(ARGV[4]) * 1000)
if redis.call('PTTL', k) < grace then
  redis.call('PEXPIRE', k, grace)
end
local elsewhere = false
local endpoints = redis.call('HGETALL', seen)  -- base URL digest -> who registered it
for i = 1, #endpoints, 2 do
  if endpoints[i] ~= ARGV[6] then
    if endpoints[i + 1] == ARGV[5] then
      redis.call('HDEL', seen, endpoints[i])  -- this process moved its own base URL
    else
      elsewhere = true
    end
  end
end
redis.call('HSET', seen, ARGV[6], ARGV[5])
redis.call('PEXPIRE', seen, grace)
if elsewhere then
  redis.call('PUBLISH', KEYS[3], cjson.encode({k = 'c', name = ARGV[7], fp = ARGV[1],
    origin = ARGV[5]}))
  if verdict == 'ok' then verdict = 'base_url' end
end
return verdict
"""


SCRIPTS = {
    "profile": _PROFILE_SCRIPT,
    "breaker": _BREAKER_SCRIPT,
    "use": _USE_SCRIPT,
    "register": _REGISTER_SCRIPT,
}
"""Each script's source, by the name its changes are queued under."""

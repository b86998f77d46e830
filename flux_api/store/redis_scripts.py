"""The Lua scripts of the Redis image store (store/redis_images.py), as data.

Each runs as one atomic step in Redis, so nodes sharing the store never race. KEYS are always
the index, the sizes, the total and (but for DELETE) the reservations, in that order.
"""

# KEYS: index, sizes, total. ARGV: the image key, the image prefix. An image its owner deleted:
# gone with its place in the index and its bytes in the count, in one step (allowed at
# maxmemory: it only frees memory).
DELETE = """#!lua flags=allow-oom
local index, sizes, total = KEYS[1], KEYS[2], KEYS[3]
local key, prefix = ARGV[1], ARGV[2]
local size = redis.call('HGET', sizes, key)
if size then
  redis.call('DECRBY', total, tonumber(size))
  redis.call('HDEL', sizes, key)
end
redis.call('ZREM', index, key)
return redis.call('DEL', prefix .. key)
"""

# KEYS: index, sizes, total, reserved. Time is Redis's own clock, and each image carries its
# expiry, so nodes whose clocks (or IMAGE_EXPIRATION) differ still agree on what has expired.
# `room`: what Redis could still take once every image of ours (not expired) were evicted;
# math.huge without maxmemory.
_COMMON = """
local index, sizes, total, reserved = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local function memory()
  local info = redis.call('INFO', 'memory')
  return tonumber(string.match(info, 'used_memory:(%d+)')),
    tonumber(string.match(info, 'maxmemory:(%d+)'))
end
local function ours()
  local bytes = tonumber(redis.call('GET', total) or '0')
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', now)) do
    bytes = bytes - tonumber(redis.call('HGET', sizes, key) or '0')
  end
  return bytes
end
local function room()
  local used, maxmemory = memory()
  if maxmemory == 0 then return math.huge end
  return maxmemory - used + ours()
end
"""

# For /healthz: runs on a replica and at maxmemory, and writes nothing. {0, 0} without
# maxmemory, else {1, room} (below 0 when Redis is past maxmemory even without our images).
ROOM = (
    "#!lua flags=no-writes\n"
    + _COMMON
    + """
local free = room()
if free == math.huge then return {0, 0} end
return {1, math.floor(free)}
"""
)

# For the metrics: the images not expired and their bytes. Runs on a replica and at maxmemory,
# and writes nothing (what has expired is forgotten by the next PUT).
USAGE = (
    "#!lua flags=no-writes\n"
    + _COMMON
    + """
return {redis.call('ZCOUNT', index, '(' .. now, '+inf'), ours()}
"""
)

# ARGV: lease (ms), the new lease "<id>:<bytes>", a lease of this context left by a generation
# that failed (or ''). Returns {1 or 0 (refused), room}. Drops ended leases; the new one goes in
# only when its bytes fit beside every other lease.
RESERVE = (
    "#!lua flags=allow-oom\n"
    + _COMMON
    + """
local lease, stale = ARGV[2], ARGV[3]
if stale ~= '' then redis.call('ZREM', reserved, stale) end
redis.call('ZREMRANGEBYSCORE', reserved, '-inf', now)
local free = room()
for _, other in ipairs(redis.call('ZRANGE', reserved, 0, -1)) do
  free = free - tonumber(string.match(other, ':(%d+)$'))
end
local wanted = tonumber(string.match(lease, ':(%d+)$'))
if free ~= math.huge and free < wanted then return {0, math.floor(free)} end
redis.call('ZADD', reserved, now + tonumber(ARGV[1]), lease)
return {1, -1}
"""
)

# ARGV: ttl (ms), limit (bytes), image prefix, this generation's lease (or ''), then a key and
# its bytes for each image. Gives the lease back, forgets what has expired (Redis dropped the
# images themselves), evicts the images closest to their end (the oldest, with one
# IMAGE_EXPIRATION) until the new ones fit under the limit and under maxmemory, then stores
# them: one atomic step, whatever the other nodes do meanwhile. Returns {stored, images
# evicted, bytes evicted}: {0, 0, 0}, having evicted and stored nothing, when evicting every
# image of ours would not make room.
PUT = (
    "#!lua flags=allow-oom\n"
    + _COMMON
    + """
local ttl, limit, prefix = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
if ARGV[4] ~= '' then redis.call('ZREM', reserved, ARGV[4]) end
local function forget(key)
  local size = tonumber(redis.call('HGET', sizes, key) or '0')
  redis.call('DECRBY', total, size)
  redis.call('HDEL', sizes, key)
  redis.call('ZREM', index, key)
  return size
end
local evicted, freed = 0, 0
local function evict_oldest()
  local first = redis.call('ZRANGE', index, 0, 0)
  if #first == 0 then return false end
  redis.call('DEL', prefix .. first[1])
  evicted, freed = evicted + 1, freed + forget(first[1])
  return true
end
for _, key in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', now)) do forget(key) end
local incoming, count = 0, 0
for i = 6, #ARGV, 2 do incoming, count = incoming + #ARGV[i], count + 1 end
-- Redis's allocator rounds a value up by up to a quarter; keys and index entries take a few
-- hundred bytes more.
local needed = math.floor(incoming * 5 / 4) + 1024 * count
local used, maxmemory = memory()
if maxmemory > 0 then
  if maxmemory - used + ours() < needed then return {0, 0, 0} end
  while used + needed > maxmemory and evict_oldest() do used = memory() end
end
while tonumber(redis.call('GET', total) or '0') + incoming > limit and evict_oldest() do end
for i = 5, #ARGV, 2 do
  local key, data = ARGV[i], ARGV[i + 1]
  redis.call('SET', prefix .. key, tostring(now + ttl) .. ':' .. data, 'PX', ttl)
  redis.call('ZADD', index, now + ttl, key)
  redis.call('HSET', sizes, key, #data)
  redis.call('INCRBY', total, #data)
end
return {1, evicted, freed}
"""
)

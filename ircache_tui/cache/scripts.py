"""Lua scripts the Redis tier runs server-side.

The stats step decides in Lua which keys are IR keys, so that sizing a large
keyspace ships no key names to Python. `_IS_OURS` is KeySpace.belongs spelled
in Lua 5.1; tests/test_scripts.py stores hostile keys and requires that the
script and `belongs` take exactly the same ones.

The flush is deliberately not a script: a SCAN + filter + UNLINK step in Lua
cost Redis about 1.65 times the server time of the same work done with the
filter in Python (benchmarks/bench_core.py), and Redis's single thread is
what a flush waits on. Scripts may be refused (ACLs, managed services), so
the stats step has an unscripted fallback.

On a Redis Cluster the stats and top steps run on each primary (EVALSHA over
a plain connection to that node, SCAN there), declaring no keys and touching
only keys that node's SCAN returned, so every key is local. Redis 6.2 allows
that. Redis 7 runs scripts without a shebang in compatibility mode, which
keeps 6.2's rule; a script with flags would need `allow-cross-slot-keys`,
and a server or proxy that refuses undeclared or cross-slot keys anyway
(`Script attempted to access keys that do not hash to the same slot`, ...)
answers with an error, on which the walk falls back to the unscripted path
on that node (scan.py). The lock scripts declare their one key (KEYS[1]).
"""

from __future__ import annotations

# Compare-and-delete and compare-and-extend: a lock is released or extended
# only by the holder of its token. They use the commands a read-write user
# has anyway (GET, UNLINK, SET XX PX): ACLs apply inside scripts too.
RELEASE_LOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('unlink', KEYS[1]) else return 0 end"
EXTEND_LOCK = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then"
    " return redis.call('set', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[2]) and 1 or 0 else return 0 end"
)

# UNLINK each key named in ARGV, on a cluster node whose keys span many slots (scan.unlink_keys):
# no key is declared, so no CROSSSLOT; every key came from this node's own SCAN, so all are local,
# unless a resharding moved its slot meanwhile: then that one UNLINK fails ("non local key", ASK,
# MOVED, CLUSTERDOWN), `pcall` lets the others go on, and the key comes back to the caller, which
# deletes it through the cluster client (that follows MOVED and ASK). Returns {deleted, key, key...}.
UNLINK_EACH = (
    "local out = {0} for _, k in ipairs(ARGV) do local r = redis.pcall('unlink', k)"
    " if type(r) == 'number' then out[1] = out[1] + r else out[#out + 1] = k end end return out"
)

# ARGV: cursor, COUNT, `{prefix}:`, a spec name ("" for every spec), the
# longest spec name in bytes. A key is ours when it is
# `{prefix}:{spec}_{8 lowercase hex}` and spec is 1..max bytes of valid
# UTF-8, with no control character, '/' or '\', nor an invisible character
# (fmt.INVISIBLE, spelled below as its UTF-8 byte sequences), and does not
# start with a dot.
# The SCAN MATCH glob is built here from the prefix, so every key the script
# sees already has the prefix and the hash; what is left is the spec name.
_IS_OURS = r"""
local cursor, count, head, only, max_spec = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local head_len = #head
local function glob_escape(s) return (string.gsub(s, '([%*%?%[%]\\%^])', '\\%1')) end
local MATCH = glob_escape(head) .. (only ~= '' and glob_escape(only) or '*') .. '_' .. string.rep('[0-9a-f]', 8)
-- a control character, '/', '\' or a byte >= 128: the rare names that need a closer look
local UNUSUAL = '[%z\1-\31/\\\127-\255]'
local FORBIDDEN = '[%z\1-\31/\\\127]'
-- fmt.INVISIBLE in UTF-8: C1 controls and U+00AD, U+061C, U+180E, U+200B-200F,
-- U+2028-202E, U+2060-206F, U+FEFF, U+FFF9-FFFB, U+E0000-E007F
local INVISIBLE = {'\194[\128-\159\173]', '\216\156', '\225\160\142', '\226\128[\139-\143\168-\174]',
                   '\226\129[\160-\175]', '\239\187\191', '\239\191[\185-\187]', '\243\160[\128-\129]'}
local function invisible(s)
  for _, pattern in ipairs(INVISIBLE) do
    if string.find(s, pattern) then return true end
  end
  return false
end

local function utf8_ok(s)
  local i, n = 1, #s
  while i <= n do
    local c = string.byte(s, i)
    if c < 128 then
      i = i + 1
    elseif c >= 194 and c <= 223 then
      local c2 = string.byte(s, i + 1)
      if not c2 or c2 < 128 or c2 > 191 then return false end
      i = i + 2
    elseif c >= 224 and c <= 239 then
      local c2, c3 = string.byte(s, i + 1, i + 2)
      if not c3 or c2 < 128 or c2 > 191 or c3 < 128 or c3 > 191 then return false end
      if (c == 224 and c2 < 160) or (c == 237 and c2 > 159) then return false end
      i = i + 3
    elseif c >= 240 and c <= 244 then
      local c2, c3, c4 = string.byte(s, i + 1, i + 3)
      if not c4 or c2 < 128 or c2 > 191 or c3 < 128 or c3 > 191 or c4 < 128 or c4 > 191 then return false end
      if (c == 240 and c2 < 144) or (c == 244 and c2 > 143) then return false end
      i = i + 4
    else
      return false
    end
  end
  return true
end

-- the spec name of a key SCAN MATCH returned, if it is ours (this runs for every key: cheap tests first)
local function spec_of(key)
  local spec = string.sub(key, head_len + 1, -10)
  local n = #spec
  if n < 1 or n > max_spec then return nil end
  if only ~= '' then return spec end  -- MATCH spelled out the (valid) name
  if string.byte(spec, 1) == 46 then return nil end  -- a leading '.'
  if string.find(spec, UNUSUAL) and (string.find(spec, FORBIDDEN) or not utf8_ok(spec) or invisible(spec)) then
    return nil
  end
  return spec
end
"""

# One stats step, read-only: SCAN a page and add up MEMORY USAGE of its IR
# keys. Returns {next cursor, keys, bytes, {spec, keys, bytes, spec, keys,
# bytes, ...}}: the totals of each spec seen on this page (two integers a
# spec; the names travel anyway).
STATS_STEP = _IS_OURS + r"""
local page = redis.call('SCAN', cursor, 'MATCH', MATCH, 'COUNT', count)
local count, bytes, at, specs = 0, 0, {}, {}
for _, key in ipairs(page[2]) do
  local spec = spec_of(key)
  if spec then
    local size = redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')
    if size then  -- nil: the key expired meanwhile
      count = count + 1
      bytes = bytes + size
      local i = at[spec]
      if not i then
        i = #specs + 1
        at[spec] = i
        specs[i], specs[i + 1], specs[i + 2] = spec, 0, 0
      end
      specs[i + 1] = specs[i + 1] + 1
      specs[i + 2] = specs[i + 2] + size
    end
  end
end
return {page[1], count, bytes, specs}
"""

# One step of a "largest first" / "expiring first" walk, read-only: SCAN a page
# and return the page's `top` IR keys by MEMORY USAGE (by='memory') or by the
# smallest PTTL (by='ttl'; keys without an expiry are left out), as
# {next cursor, key1, value1, key2, value2, ...}. Only `top` names a page
# travel to Python, so the walk costs about what the stats walk does.
TOP_STEP = _IS_OURS + r"""
local by, top = ARGV[6], tonumber(ARGV[7])
local page = redis.call('SCAN', cursor, 'MATCH', MATCH, 'COUNT', count)
local found = {}
for _, key in ipairs(page[2]) do
  if spec_of(key) then
    local value
    if by == 'memory' then value = redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')
    else value = redis.call('PTTL', key); if value < 0 then value = nil end end
    if value then found[#found + 1] = {key, value} end
  end
end
if by == 'memory' then table.sort(found, function(a, b) return a[2] > b[2] end)
else table.sort(found, function(a, b) return a[2] < b[2] end) end
local out = {page[1]}
for i = 1, math.min(top, #found) do out[#out + 1] = found[i][1]; out[#out + 1] = found[i][2] end
return out
"""

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
on that node (walk.py, sizes.py). The lock scripts declare their one key (KEYS[1]).
"""

from __future__ import annotations


# UNLINK each key named in ARGV, on a cluster node whose keys span many slots (scan.unlink_keys):
# no key is declared, so no CROSSSLOT; every key came from this node's own SCAN, so all are local,
# unless a resharding moved its slot meanwhile: then that one UNLINK fails ("non local key", ASK,
# MOVED, CLUSTERDOWN), `pcall` lets the others go on, and the key comes back to the caller, which
# deletes it through the cluster client (that follows MOVED and ASK). Returns {deleted, key, key...}.
UNLINK_EACH = (
    "local out = {0} for _, k in ipairs(ARGV) do local r = redis.pcall('unlink', k)"
    " if type(r) == 'number' then out[1] = out[1] + r else out[#out + 1] = k end end return out"
)

# `named`: a refusal inside a script is worded by each server its own way (refusals.py has them
# all): Redis 6 and 7 do not even name the refused command ("The user executing the script can't run
# this command or subcommand", "... can't access at least one of the keys ..."), Valkey says "ACL
# failure in script: ...". It is returned as NOPERM says it outside a script, naming the command, or
# as a refused key, so the caller can name the rule, whatever the server.
_NAMED = r"""
local function named(reply, command)
  local err = reply.err
  if string.find(err, 'access a key', 1, true) or string.find(err, 'permissions to access', 1, true)
      or string.find(err, "can't access", 1, true) then
    return {err = 'NOPERM No permissions to access a key'}
  end
  if string.find(err, "can't run this command", 1, true) or string.find(err, 'ACL failure', 1, true)
      or string.find(err, 'NOPERM', 1, true) or string.find(err, 'no permissions', 1, true) then
    return {err = "NOPERM this user has no permissions to run the '" .. command .. "' command"}
  end
  return reply
end
"""

# Is this key an entry? GETRANGE of the envelope's first bytes (envelope.ENTRY_HEAD, passed in):
# another type answers WRONGTYPE, another tool's string answers other bytes. One command per key,
# inside the script that then counts or deletes it, so nothing can change in between.
# Returns 1 (an entry, or a value cut short inside the head: a torn write of ours), 0 (not an
# entry), nil (gone; or an empty string, which is nobody's entry), or false and an error reply for
# the script to return (an ACL refusal of GETRANGE, a key its node no longer serves): a key that
# cannot be proved ours is never counted or deleted. (Errors are returned, not raised: Redis 6.2
# cannot raise an error reply from Lua, and only a returned one keeps its NOPERM word.)
_ENTRY_STATE = _NAMED + r"""
local function entry_state(key, entry)
  local value = redis.pcall('GETRANGE', key, 0, #entry - 1)
  if type(value) == 'table' then
    if string.find(value.err, 'WRONGTYPE', 1, true) then return 0 end
    return false, named(value, 'getrange')
  end
  if value == entry then return 1 end
  if value == '' then return nil end
  if #value < #entry and string.sub(entry, 1, #value) == value then return 1 end
  return 0
end
"""

# Compare-and-delete and compare-and-extend: a lock is released or extended
# only by the holder of its token. They use the commands a read-write user
# has anyway (GET, UNLINK, SET XX PX): ACLs apply inside scripts too, and a
# refusal is returned `named` (above), so the caller names the rule on every
# server. (Where the server has them, lock.py uses DELIFEQ / DELEX IFEQ and
# SET IFEQ instead: no script rights needed.)
RELEASE_LOCK = _NAMED + r"""
local held = redis.pcall('get', KEYS[1])
if type(held) == 'table' and held.err then return named(held, 'get') end
if held ~= ARGV[1] then return 0 end
local r = redis.pcall('unlink', KEYS[1])
if type(r) == 'table' and r.err then return named(r, 'unlink') end
return r
"""
EXTEND_LOCK = _NAMED + r"""
local held = redis.pcall('get', KEYS[1])
if type(held) == 'table' and held.err then return named(held, 'get') end
if held ~= ARGV[1] then return 0 end
local r = redis.pcall('set', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[2])
if type(r) == 'table' and r.err then return named(r, 'set') end
return r and 1 or 0
"""

# UNLINK the keys named in ARGV[4 .. 3 + ARGV[3]] that hold entries (ARGV[1] = envelope.ENTRY_HEAD);
# keep the others. ARGV[2] says where and how their hit counts (`{key}:hits`) go:
#  '1' on a cluster node: each key on its own (no multi-key command across slots), and a key its node
#      no longer serves comes back to the caller (as in UNLINK_EACH) instead of failing the batch. (Hit
#      keys may live on another node there: the cluster's flush sweeps them.)
#  '0' on one server, for a list of keys: each deleted entry's hit key goes in the same step.
#  'w' on one server, in a walk that finds the hit keys itself (its MATCH takes both): they are the
#      rest of ARGV, and each goes when its entry is gone (deleted here, before, or long ago) and it is
#      a hash (as ours are); one whose entry is still there (a later page of the walk deletes it) comes
#      back to the caller, who asks again at the end. A flush then builds no hit key name per entry:
#      on 100,000 entries that sweep cost Redis about a third of the flush (bench_core.py). Only for a
#      user who may send TYPE (walk.py asks): the README's ACLs do not grant it, and take mode '0'.
# Returns {deleted, kept (not entries), key, key...}: the keys that came back (elsewhere, or waiting).
UNLINK_ENTRIES = _ENTRY_STATE + r"""
local entry, mode, last = ARGV[1], ARGV[2], 3 + tonumber(ARGV[3])
local each = mode == '1'
local deleted, kept, out, entries = 0, 0, {0, 0}, {}
for i = 4, last do
  local key = ARGV[i]
  local state, err = entry_state(key, entry)
  if state == false then
    if not each then return err end
    out[#out + 1] = key  -- (see UNLINK_EACH) or refused: the caller's reroute says which
  elseif state == 0 then
    kept = kept + 1
  elseif state == 1 then
    if each then
      local r = redis.pcall('unlink', key)
      if type(r) == 'number' then deleted = deleted + r else out[#out + 1] = key end
    else
      entries[#entries + 1] = key
    end
  end
end
for i = 1, #entries, 1000 do
  local r = redis.pcall('unlink', unpack(entries, i, math.min(i + 999, #entries)))
  if type(r) == 'table' then return named(r, 'unlink') end
  deleted = deleted + r
end
if mode == '0' then
  for i = 1, #entries do entries[i] = entries[i] .. ':hits' end
  for i = 1, #entries, 1000 do
    redis.pcall('unlink', unpack(entries, i, math.min(i + 999, #entries)))
  end
elseif mode == 'w' then
  for i = last + 1, #ARGV do
    local hits = ARGV[i]
    local there = redis.pcall('exists', string.sub(hits, 1, -6))
    if there == 1 then
      out[#out + 1] = hits
    elseif there == 0 then
      local kind = redis.pcall('type', hits)  -- (refused: not proved ours, left; walk.py asks first)
      if kind.ok == 'hash' then redis.pcall('unlink', hits) end
    end
  end
end
out[1], out[2] = deleted, kept
return out
"""

# UNLINK one key (KEYS[1]) if it holds an entry (ARGV[1] = envelope.ENTRY_HEAD): 1 deleted, 0 gone,
# -1 kept (not an entry). For a delete by name (the dashboard's `d`) and the cluster reroute.
DELETE_ENTRY = _ENTRY_STATE + r"""
local state, err = entry_state(KEYS[1], ARGV[1])
if state == false then return err end
local command = state == 1 and 'unlink' or 'exists'
local r = redis.pcall(command, KEYS[1])
if type(r) == 'table' then return named(r, command) end
if state == 1 then return r end
if state == 0 or r == 1 then return -1 end
return 0
"""

# ARGV: cursor, COUNT, `{prefix}:`, a spec name ("" for every spec), the
# longest spec name in bytes, envelope.ENTRY_HEAD. A key is an entry when its name is
# `{prefix}:{spec}_{8 lowercase hex}` and spec is 1..max bytes of valid
# UTF-8, with no control character, '/' or '\', nor an invisible character
# (fmt.INVISIBLE, spelled below as its UTF-8 byte sequences), and does not
# start with a dot, and its value begins as an entry does (entry_state): a key of our name that
# holds something else is counted apart (`foreign`), never as an entry.
# The SCAN MATCH glob is built here from the prefix, so every key the script
# sees already has the prefix and the hash; what is left is the spec name.
_IS_OURS = _ENTRY_STATE + r"""
local cursor, count, head, only, max_spec, entry = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), ARGV[6]
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

# One stats step, read-only: SCAN a page and add up MEMORY USAGE of its
# entries. Returns {next cursor, keys, bytes, {spec, keys, bytes, spec, keys,
# bytes, ...}, foreign, {generator, keys, ...}}: the totals of each spec seen on this page (two
# integers a spec; the names travel anyway), how many keys of our name
# hold something that is not an entry, and with ARGV[7] = '1' how many entries each generator
# object made (envelope.GENERATOR_MARK: the bytes from its `{` to the first `}` in the entry's
# first KiB; '' when they hold none). A handful of generators travel, never a head: Python then
# says which are outdated (envelope.GeneratorInfo.outdated_for), one rule for every path.
STATS_STEP = _IS_OURS + r"""
local page = redis.call('SCAN', cursor, 'MATCH', MATCH, 'COUNT', count)
local count, bytes, foreign, at, specs = 0, 0, 0, {}, {}
local by_generator, gen_at, gens = ARGV[7] == '1', {}, {}
local function made_by(key)
  local head = redis.pcall('GETRANGE', key, 0, 1023)
  if type(head) ~= 'string' then return '' end
  local s = string.find(head, '"generator":{', 1, true)
  if not s then return '' end
  local e = string.find(head, '}', s, true)
  if not e then return '' end
  return string.sub(head, s + 12, e)
end
for _, key in ipairs(page[2]) do
  local spec = spec_of(key)
  local state, err
  if spec then state, err = entry_state(key, entry) end
  if state == false then
    return err
  elseif state == 0 then
    foreign = foreign + 1
  elseif state == 1 then
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
      if by_generator then
        local g = made_by(key)
        local j = gen_at[g]
        if not j then
          j = #gens + 1
          gen_at[g] = j
          gens[j], gens[j + 1] = g, 0
        end
        gens[j + 1] = gens[j + 1] + 1
      end
    end
  end
end
return {page[1], count, bytes, specs, foreign, gens}
"""

# One step of a "largest first" / "expiring first" walk, read-only: SCAN a page
# and return the page's `top` IR keys by MEMORY USAGE (by='memory') or by the
# smallest PTTL (by='ttl'; keys without an expiry are left out), as
# {next cursor, key1, value1, key2, value2, ...}, plus every further key tied
# with the last of them: Lua's `<` on strings follows the server's locale, not
# bytes, so the tie is broken by name in Python (scan.scan_top), the same on
# every server. About `top` names a page travel to Python, so the walk costs
# about what the stats walk does.
TOP_STEP = _IS_OURS + r"""
local by, top = ARGV[7], tonumber(ARGV[8])
local page = redis.call('SCAN', cursor, 'MATCH', MATCH, 'COUNT', count)
local found = {}
for _, key in ipairs(page[2]) do
  local state, err
  if spec_of(key) then state, err = entry_state(key, entry) end
  if state == false then return err end
  if state == 1 then
    local value
    if by == 'memory' then value = redis.call('MEMORY', 'USAGE', key, 'SAMPLES', '0')
    else value = redis.call('PTTL', key); if value < 0 then value = nil end end
    if value then found[#found + 1] = {key, value} end
  end
end
if by == 'memory' then table.sort(found, function(a, b) return a[2] > b[2] end)
else table.sort(found, function(a, b) return a[2] < b[2] end) end
local out = {page[1]}
for i = 1, #found do
  if i > top and (top < 1 or found[i][2] ~= found[top][2]) then break end
  out[#out + 1] = found[i][1]; out[#out + 1] = found[i][2]
end
return out
"""

# Add one process's hit counts to one hash (KEYS[1]: `{prefix}:stats:hits` or `{prefix}:{key}:hits`),
# at most once per batch: the hash remembers, per writing process, the last batch it took (field
# `~w:{writer}`), so a batch sent again after a timeout (it may have been applied while its answer
# was lost) adds nothing the second time. `gen` (the entry's generated_at, epoch seconds; '' for
# the totals) ties an entry's counts to one generation of it: counts of an older generation than
# the hash's are dropped (the entry was deleted and made again after those hits), a newer one starts
# the hash afresh. A field that does not read as a count (another writer's garbage, a sum past what
# a float holds) is started again from this batch and named in the reply, never a script error
# halfway (a script's writes before an error stay: no rollback).
# ARGV: writer, batch number, ttl (0: none), gen, final ('1': forget the writer's mark, the last
# batch of a process), since (set unless a time is there; '' none), last hit (kept if later; '' none), then
# field/increment pairs ('.' in an increment: a float). Returns {1 added | 0 had it | -1 older
# generation, field started again, ...}.
HIT_ADD = _ENTRY_STATE + r"""
local failed
local function call(command, ...)  -- a refused command ends the script, named (see `named`)
  local r = redis.pcall(command, ...)
  if type(r) == 'table' and r.err then
    failed = named(r, string.lower(command))
    error(failed.err)
  end
  return r
end

local function main()
  local key, mark, seq = KEYS[1], '~w:' .. ARGV[1], tonumber(ARGV[2])
  local ttl, gen, final = tonumber(ARGV[3]), ARGV[4], ARGV[5] == '1'
  local function ok(x) return x ~= nil and x == x and x >= 0 and x < 1e15 end
  local seen = call('HMGET', key, mark, 'gen', 'last', 'since')
  if tonumber(seen[1]) and tonumber(seen[1]) >= seq then
    if final then call('HDEL', key, mark) end
    return {0}
  end
  if gen ~= '' and seen[2] and seen[2] ~= gen then
    if (tonumber(gen) or 0) < (tonumber(seen[2]) or 0) then return {-1} end
    call('UNLINK', key)
    seen[3] = false
  end
  local out = {1}
  local sets = {}
  if gen ~= '' then sets[#sets + 1] = 'gen'; sets[#sets + 1] = gen end
  if ARGV[6] ~= '' and not (seen[4] and string.find(seen[4], '^%d%d%d%d%-%d%d%-%d%dT[%d:]+[+%-Z]')) then
    sets[#sets + 1] = 'since'; sets[#sets + 1] = ARGV[6]  -- none yet, or not a time: from now
  end
  if ARGV[7] ~= '' and not ((tonumber(seen[3]) or -1) >= tonumber(ARGV[7])) then
    sets[#sets + 1] = 'last'; sets[#sets + 1] = ARGV[7]
  end
  for i = 8, #ARGV, 2 do
    local field, add = ARGV[i], ARGV[i + 1]
    local now = call('HMGET', key, field)[1]
    local float = string.find(add, '.', 1, true) ~= nil
    local value = now and tonumber(now)
    if now and not (ok(value) and (float or string.find(now, '^%d+$'))) then
      out[#out + 1] = field  -- garbage: this batch starts it again
      sets[#sets + 1] = field; sets[#sets + 1] = add
    elseif float then
      if not ok((value or 0) + tonumber(add)) then
        out[#out + 1] = field
        sets[#sets + 1] = field; sets[#sets + 1] = add
      else
        call('HINCRBYFLOAT', key, field, add)
      end
    else
      call('HINCRBY', key, field, add)
    end
  end
  if not final then sets[#sets + 1] = mark; sets[#sets + 1] = seq end
  if #sets > 0 then call('HSET', key, unpack(sets)) end
  if final then call('HDEL', key, mark) end
  if ttl > 0 then call('EXPIRE', key, ttl) end
  return out
end

local ok, result = pcall(main)
if ok then return result end
return failed or {err = 'ERR hit counts: ' .. tostring(result)}
"""

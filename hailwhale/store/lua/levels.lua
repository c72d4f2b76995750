-- Set or change the levels of gauge series (statsd's "+x"/"-x" gauges change the level
-- the store holds, so that every process, and a process started again, agree).
--
-- KEYS[1]: the writer's levels token under the tag; KEYS[2..]: one level key per series
-- ARGV: seq, seconds a level is kept, then per series: n, [is a change (1/0), value] x n
--
-- Each series' steps are applied in order: a change adds to the level, a value sets it.
-- Returns, per series, the level after each step (as text: every digit kept).  A batch
-- (seq) already applied returns what it returned then: a retry after a lost reply does
-- not change the levels twice.
local seen = redis.call('GET', KEYS[1])
if seen then
  local record = cjson.decode(seen)
  if record[1] >= tonumber(ARGV[1]) then
    return record[2]
  end
end
local keep = tonumber(ARGV[2])
local out = {}
local at = 3
for i = 2, #KEYS do
  local n = tonumber(ARGV[at])
  at = at + 1
  local level = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  local settled = {}
  for j = 1, n do
    local value = tonumber(ARGV[at + 1])
    if ARGV[at] == '1' then
      level = level + value
    else
      level = value
    end
    at = at + 2
    settled[j] = string.format('%.17g', level)
  end
  redis.call('SET', KEYS[i], string.format('%.17g', level), 'EX', keep)
  out[i - 1] = settled
end
redis.call('SET', KEYS[1], cjson.encode({tonumber(ARGV[1]), out}), 'EX', 604800)
return out

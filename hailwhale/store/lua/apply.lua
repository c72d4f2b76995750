-- Apply one flush call: the writes of several pk tags (all in one cluster slot) in their
-- finest buckets, once.  KEYS[1]: the writer's last token under the first tag.
-- ARGV: the call's token, the token's lifetime (s), now, `since`, the finest size and its
-- retention, the coarser sizes and their retentions as a JSON list of pairs, a JSON flat
-- list of the tags' writes (below), then how long the index sets outlive the data written
-- with them (writers may skip rewriting an index member for that long).  The writes, tag
-- after tag:
--   tag, n, [bucket, metric, parent, m, [node, amount] x m] x n     (sums)
--        n, [bucket, metric, parent, m, [node, level] x m] x n      (levels)
--        n, [bucket, metric, node, m, [member] x m] x n             (unique counts)
--        n, [key suffix, m, [member] x m] x n                      (index sets)
--        n, [bucket, metric, node, m, [sketch bucket, count] x m] x n  (distributions)
-- (flat, so that decoding makes one table, not one per cell).  `since` is the fold's reach
-- for a tag never folded: the bucket before the layout's first live one.
--
-- A finest bucket the tag's fold has not reached (after hw:{tag}:folded) is written alone
-- and noted in hw:{tag}:dirty, to be folded into the coarser sizes later (fold.lua); one
-- the fold has reached (a late event), or past the finest retention, is written into every
-- coarser size at once as well.  A write the store refuses (a key of ours holding foreign
-- data) is skipped and reported; the rest of the call still applies, so the token is
-- recorded either way and a retry never counts twice.
local seen = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) <= seen then return {0} end
local now, since = tonumber(ARGV[3]), tonumber(ARGV[4])
local finest, retention = tonumber(ARGV[5]), tonumber(ARGV[6])
local folded = cjson.decode(ARGV[7])
local w = cjson.decode(ARGV[8])
local margin = tonumber(ARGV[9])
local refused = {}
local longest = finest + retention
for _, pair in ipairs(folded) do longest = math.max(longest, pair[1] + pair[2]) end

-- numbers below 1e14 concatenate as whole numbers (Lua's %.14g); keys are built by
-- concatenation alone (string.format costs microseconds a call)
local function refuse(tag, reply)
  if type(reply) == 'table' and reply.err then
    if not refused[tag] then refused[tag] = reply.err end
    return true
  end
  return false
end

-- write (ZINCRBY for sums and distributions, ZADD for levels) one cell's members into
-- every coarser size kept; `kind` is the key's kind: z (sums, levels) or d (distributions)
local function into_coarser(tag, kind, command, bucket, metric, parent, at, count)
  for _, pair in ipairs(folded) do
    local size = pair[1]
    local start = math.floor(bucket / size) * size
    local expires = start + size + pair[2]
    if expires > now then
      local k = 'hw:' .. tag .. ':' .. kind .. ':' .. size .. ':' .. start .. ':' .. metric .. ':' .. parent
      local ok = true
      for j = at, at + 2 * count - 2, 2 do
        if refuse(tag, redis.pcall(command, k, w[j + 1], w[j])) then ok = false end
      end
      if ok then redis.call('EXPIREAT', k, expires) end
    end
  end
end

local i = 1
while i <= #w do
  local tag = w[i]
  local marker = tonumber(redis.call('GET', 'hw:' .. tag .. ':folded') or since)
  local dirty = 'hw:' .. tag .. ':dirty'
  local dirty_until = 0  -- the notes' set lives as long as the latest bucket noted in it
  local prefix = 'hw:' .. tag .. ':z:' .. finest .. ':'
  i = i + 1
  -- sums, then levels: sorted sets, member the node
  for kind = 1, 2 do
    local command = kind == 1 and 'ZINCRBY' or 'ZADD'
    local cells = w[i]
    i = i + 1
    for _ = 1, cells do
      local bucket, metric, parent, count = w[i], w[i + 1], w[i + 2], w[i + 3]
      local at = i + 4
      i = at + 2 * count
      local expires = bucket + finest + retention
      local late = bucket <= marker or expires <= now
      if expires > now then
        local k = prefix .. bucket .. ':' .. metric .. ':' .. parent
        local new, ok = false, true
        for j = at, i - 2, 2 do
          local amount = w[j + 1]
          local reply = redis.pcall(command, k, amount, w[j])
          if refuse(tag, reply) then
            ok = false
          elseif (kind == 1 and tonumber(reply) == amount) or (kind == 2 and reply == 1) then
            new = true  -- a member new to the bucket (or back from 0): the bucket may be new too
          end
        end
        if new and ok then
          redis.call('EXPIREAT', k, expires)
          if not late then
            redis.call('ZADD', dirty, bucket, (kind == 1 and 'z|' or 'g|') .. bucket .. '|' .. metric .. '|' .. parent)
            dirty_until = math.max(dirty_until, expires)
          end
        end
      end
      if late then into_coarser(tag, 'z', command, bucket, metric, parent, at, count) end
    end
  end
  -- unique counts: HyperLogLogs, one per node
  local cells = w[i]
  i = i + 1
  for _ = 1, cells do
    local bucket, metric, node, count = w[i], w[i + 1], w[i + 2], w[i + 3]
    local first, last = i + 4, i + 3 + count
    i = last + 1
    local expires = bucket + finest + retention
    local late = bucket <= marker or expires <= now
    local targets = {}
    if expires > now then targets[1] = {finest, bucket, expires, not late} end
    if late then
      for _, pair in ipairs(folded) do
        local start = math.floor(bucket / pair[1]) * pair[1]
        if start + pair[1] + pair[2] > now then
          targets[#targets + 1] = {pair[1], start, start + pair[1] + pair[2], false}
        end
      end
    end
    for _, target in ipairs(targets) do
      local k = 'hw:' .. tag .. ':u:' .. target[1] .. ':' .. target[2] .. ':' .. metric .. ':' .. node
      local changed, ok = 0, true
      for from = first, last, 1000 do
        local reply = redis.pcall('PFADD', k, unpack(w, from, math.min(from + 999, last)))
        if refuse(tag, reply) then ok = false else changed = changed + reply end
      end
      if ok and (changed > 0 or target[1] ~= finest) then
        redis.call('EXPIREAT', k, target[3])
        if target[4] then
          redis.call('ZADD', dirty, bucket, 'u|' .. bucket .. '|' .. metric .. '|' .. node)
          dirty_until = math.max(dirty_until, target[3])
        end
      end
    end
  end
  -- the index sets (each node's children, the pk's child pks, its metric names): kept as
  -- long as the longest-lived bucket written after them and the margin, so as long as data
  -- goes on arriving
  cells = w[i]
  i = i + 1
  for _ = 1, cells do
    local suffix, count = w[i], w[i + 1]
    local first, last = i + 2, i + 1 + count
    i = last + 1
    local k = 'hw:' .. tag .. ':' .. suffix
    local ok = true
    for from = first, last, 1000 do
      if refuse(tag, redis.pcall('SADD', k, unpack(w, from, math.min(from + 999, last)))) then ok = false end
    end
    if ok then
      local expires = math.floor(now) + longest + margin
      if redis.call('EXPIRETIME', k) < expires then redis.call('EXPIREAT', k, expires) end
    end
  end
  -- distributions: a sketch per node, member the sketch bucket, score its count
  cells = w[i]
  i = i + 1
  for _ = 1, cells do
    local bucket, metric, node, count = w[i], w[i + 1], w[i + 2], w[i + 3]
    local at = i + 4
    i = at + 2 * count
    local expires = bucket + finest + retention
    local late = bucket <= marker or expires <= now
    if expires > now then
      local k = 'hw:' .. tag .. ':d:' .. finest .. ':' .. bucket .. ':' .. metric .. ':' .. node
      local new, ok = false, true
      for j = at, i - 2, 2 do
        local reply = redis.pcall('ZINCRBY', k, w[j + 1], w[j])
        if refuse(tag, reply) then ok = false elseif tonumber(reply) == w[j + 1] then new = true end
      end
      if new and ok then
        redis.call('EXPIREAT', k, expires)
        if not late then
          redis.call('ZADD', dirty, bucket, 'd|' .. bucket .. '|' .. metric .. '|' .. node)
          dirty_until = math.max(dirty_until, expires)
        end
      end
    end
    if late then into_coarser(tag, 'd', 'ZINCRBY', bucket, metric, node, at, count) end
  end
  if dirty_until > 0 and redis.call('EXPIRETIME', dirty) < dirty_until then redis.call('EXPIREAT', dirty, dirty_until) end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local out = {1}
for tag, message in pairs(refused) do
  out[#out + 1] = tag
  out[#out + 1] = message
end
return out

-- Apply one flush call: the writes of several pk tags (all in one cluster slot) in their
-- finest buckets, once.  KEYS[1]: the writer's last token under the first tag.
-- ARGV[1]: this call's token; ARGV[2]: the token's lifetime (s); ARGV[3]: JSON
--   {now, since, finest: [size, retention], folded: [[size, retention], ...],
--    tags: [[tag, sums, levels, uniques, children], ...]}
-- where sums and levels are [[bucket, metric, parent, {node: amount}], ...], uniques
-- [[bucket, metric, node, [member, ...]], ...] and children {parent: [node, ...]}.
--
-- `since` is the fold's reach for a tag never folded: the bucket before the layout's first
-- live one.  A finest bucket the tag's fold has not reached (after hw:{tag}:folded) is written alone and noted in hw:{tag}:dirty, to be folded
-- into the coarser sizes later (fold.lua).  One the fold has reached (a late event) is
-- written into every coarser size at once as well.  A write the store refuses (a key of
-- ours holding foreign data) is skipped and reported; the rest of the call still applies,
-- so the token is recorded either way and a retry never counts twice.
local seen = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) <= seen then return {0} end
local call = cjson.decode(ARGV[3])
local now, since = call.now, call.since
local finest, retention = call.finest[1], call.finest[2]
local refused = {}

local function key(tag, kind, size, bucket, metric, part)
  return 'hw:' .. tag .. ':' .. kind .. ':' .. string.format('%d', size) .. ':' .. string.format('%d', bucket)
    .. ':' .. metric .. ':' .. part
end

local function refuse(tag, reply)
  if not refused[tag] then refused[tag] = reply.err end
end

-- the sizes a late bucket goes into: (size, bucket, expires at), the ones still retained
local function coarser(bucket)
  local found = {}
  for _, pair in ipairs(call.folded) do
    local size = pair[1]
    local start = math.floor(bucket / size) * size
    local expires = start + size + pair[2]
    if expires > now then found[#found + 1] = {size, start, expires} end
  end
  return found
end

for _, write in ipairs(call.tags) do
  local tag = write[1]
  local marker = tonumber(redis.call('GET', 'hw:' .. tag .. ':folded') or since)
  local dirty = 'hw:' .. tag .. ':dirty'
  local function note(kind, bucket, metric, part)
    redis.call('ZADD', dirty, bucket, kind .. '|' .. string.format('%d', bucket) .. '|' .. metric .. '|' .. part)
  end
  -- sums (z) and levels (g): sorted sets, member the node
  for _, kind in ipairs({'z', 'g'}) do
    local cells = kind == 'z' and write[2] or write[3]
    local command = kind == 'z' and 'ZINCRBY' or 'ZADD'
    for _, cell in ipairs(cells) do
      local bucket, metric, parent, amounts = cell[1], cell[2], cell[3], cell[4]
      local expires = bucket + finest + retention
      local late = bucket <= marker or expires <= now  -- folded already, or kept in the coarser sizes only
      if expires > now then
        local k = key(tag, 'z', finest, bucket, metric, parent)
        local new, ok = false, true
        for node, amount in pairs(amounts) do
          local reply = redis.pcall(command, k, amount, node)
          if type(reply) == 'table' and reply.err then
            refuse(tag, reply)
            ok = false
          elseif (kind == 'z' and tonumber(reply) == amount) or (kind == 'g' and reply == 1) then
            new = true  -- a member new to the bucket (or back from 0): the bucket may be new too
          end
        end
        if new and ok then
          redis.call('EXPIREAT', k, expires)
          if not late then note(kind, bucket, metric, parent) end
        end
      end
      if late then
        for _, target in ipairs(coarser(bucket)) do
          local k = key(tag, 'z', target[1], target[2], metric, parent)
          local ok = true
          for node, amount in pairs(amounts) do
            local reply = redis.pcall(command, k, amount, node)
            if type(reply) == 'table' and reply.err then
              refuse(tag, reply)
              ok = false
            end
          end
          if ok then redis.call('EXPIREAT', k, target[3]) end
        end
      end
    end
  end
  -- unique counts: HyperLogLogs, one per node
  for _, cell in ipairs(write[4]) do
    local bucket, metric, node, names = cell[1], cell[2], cell[3], cell[4]
    local late = bucket <= marker or bucket + finest + retention <= now
    local targets = {}
    if bucket + finest + retention > now then targets[1] = {finest, bucket, bucket + finest + retention, not late} end
    if late then
      for _, target in ipairs(coarser(bucket)) do targets[#targets + 1] = {target[1], target[2], target[3], false} end
    end
    for _, target in ipairs(targets) do
      local k = key(tag, 'u', target[1], target[2], metric, node)
      local changed, ok = 0, true
      for first = 1, #names, 1000 do
        local reply = redis.pcall('PFADD', k, unpack(names, first, math.min(first + 999, #names)))
        if type(reply) == 'table' and reply.err then
          refuse(tag, reply)
          ok = false
        else
          changed = changed + reply
        end
      end
      if ok and (changed > 0 or target[1] ~= finest) then
        redis.call('EXPIREAT', k, target[3])
        if target[4] then note('u', bucket, metric, node) end
      end
    end
  end
  -- the dimension tree: a set of children per node, kept as long as its longest-lived
  -- bucket (the fold extends it as data goes on arriving)
  local longest = call.finest[1] + call.finest[2]
  for _, pair in ipairs(call.folded) do longest = math.max(longest, pair[1] + pair[2]) end
  for parent, children in pairs(write[5]) do
    local k = 'hw:' .. tag .. ':sub:' .. parent
    local added, ok = 0, true
    for first = 1, #children, 1000 do
      local reply = redis.pcall('SADD', k, unpack(children, first, math.min(first + 999, #children)))
      if type(reply) == 'table' and reply.err then
        refuse(tag, reply)
        ok = false
      else
        added = added + reply
      end
    end
    if ok and added > 0 then
      local expires = math.floor(now) + longest
      if redis.call('EXPIRETIME', k) < expires then redis.call('EXPIREAT', k, expires) end
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
local out = {1}
for tag, message in pairs(refused) do
  out[#out + 1] = tag
  out[#out + 1] = message
end
return out

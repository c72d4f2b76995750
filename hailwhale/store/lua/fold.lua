-- Fold closed finest buckets into the coarser sizes, for several pk tags (all in one
-- cluster slot).  KEYS[1]: the first tag's hw:{tag}:folded key.  ARGV[1]: JSON
--   {target, now, since, most, finest: [size, retention], folded: [[size, retention], ...],
--    tags: [tag, ...]}
-- `since` is the fold's reach for a tag never folded (the bucket before the layout's first
-- live one).  For each tag, every bucket noted in hw:{tag}:dirty up to `target` is added into each
-- coarser size still retained (sums add, levels overwrite in bucket order, unique counts
-- merge), its note removed, and hw:{tag}:folded moved to `target`: all in this one atomic
-- call, so a fold is never done twice nor half.  At most about `most` notes are folded per
-- tag and call, whole buckets at a time; a tag with more left is returned, to be folded
-- again.  Returns {notes folded, tags with more left..., '', refused tag, message, ...}.
local call = cjson.decode(ARGV[1])
local target, now, since, most = call.target, call.now, call.since, call.most
local finest = call.finest[1]
local longest = call.finest[1] + call.finest[2]
for _, pair in ipairs(call.folded) do longest = math.max(longest, pair[1] + pair[2]) end
local folded_count, more, refused = 0, {}, {}

-- numbers below 1e14 concatenate as whole numbers (Lua's %.14g), and string.format costs
-- several microseconds a call: keys are built by concatenation alone
local function key(tag, kind, size, bucket, metric, part)
  return 'hw:' .. tag .. ':' .. kind .. ':' .. size .. ':' .. bucket .. ':' .. metric .. ':' .. part
end

local function failed(tag, reply)
  if type(reply) == 'table' and reply.err then
    if not refused[tag] then refused[tag] = reply.err end
    return true
  end
  return false
end

for _, tag in ipairs(call.tags) do
  local dirty = 'hw:' .. tag .. ':dirty'
  local marker_key = 'hw:' .. tag .. ':folded'
  local marker = tonumber(redis.call('GET', marker_key) or since)
  local notes = redis.call('ZRANGEBYSCORE', dirty, '-inf', target, 'WITHSCORES', 'LIMIT', 0, most + 1)
  local reach = target
  if #notes / 2 > most then
    -- fold whole buckets only: stop before the last bucket read, unless it is the only one
    local last = tonumber(notes[#notes])
    local first = tonumber(notes[2])
    if first == last then
      notes = redis.call('ZRANGEBYSCORE', dirty, last, last, 'WITHSCORES')
      reach = last
    else
      reach = last - finest
      local kept = {}
      for i = 1, #notes, 2 do
        if tonumber(notes[i + 1]) <= reach then
          kept[#kept + 1] = notes[i]
          kept[#kept + 1] = notes[i + 1]
        end
      end
      notes = kept
    end
    more[#more + 1] = tag
  end
  for i = 1, #notes, 2 do
    local note = notes[i]
    local kind, bucket_text, metric, part = string.match(note, '^(%a)|(%-?%d+)|([^|]*)|(.*)$')
    local bucket = tonumber(bucket_text)
    local stored = (kind == 'u' or kind == 'd') and kind or 'z'
    local source = key(tag, stored, finest, bucket, metric, part)
    local pairs_ = {}
    if kind ~= 'u' then pairs_ = redis.call('ZRANGE', source, 0, -1, 'WITHSCORES') end
    local exists = kind == 'u' and redis.call('EXISTS', source) == 1 or #pairs_ > 0
    for _, size_retention in ipairs(call.folded) do
      local size = size_retention[1]
      local start = math.floor(bucket / size) * size
      local expires = start + size + size_retention[2]
      if exists and expires > now then
        local k = key(tag, stored, size, start, metric, part)
        local ok, new = true, true
        if kind == 'u' then
          ok = not failed(tag, redis.pcall('PFMERGE', k, k, source))
        elseif kind ~= 'g' and #pairs_ > 64 then
          ok = not failed(tag, redis.pcall('ZUNIONSTORE', k, 2, k, source))
        else
          -- a key that held every member already has its expiry (the same, from its bucket)
          new = false
          for j = 1, #pairs_, 2 do
            local reply
            if kind == 'g' then
              reply = redis.pcall('ZADD', k, pairs_[j + 1], pairs_[j])
              if reply == 1 then new = true end
            else
              reply = redis.pcall('ZINCRBY', k, pairs_[j + 1], pairs_[j])
              if tonumber(reply) == tonumber(pairs_[j + 1]) then new = true end
            end
            if failed(tag, reply) then ok = false end
          end
        end
        if ok and new then redis.call('EXPIREAT', k, expires) end
      end
    end
    folded_count = folded_count + 1
  end
  if #notes > 0 then redis.call('ZREMRANGEBYSCORE', dirty, '-inf', reach) end
  if reach > marker then redis.call('SET', marker_key, string.format('%d', reach), 'EX', longest) end
end

local out = {folded_count}
for _, tag in ipairs(more) do out[#out + 1] = tag end
out[#out + 1] = ''
for tag, message in pairs(refused) do
  out[#out + 1] = tag
  out[#out + 1] = message
end
return out

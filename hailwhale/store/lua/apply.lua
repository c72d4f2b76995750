-- KEYS[1]: this writer's last token under the tag; KEYS[2..]: the keys written, in the order
-- of ARGV[3], a JSON list of [kind, expires at, members]: 'z' adds {member: amount} to a
-- sorted set, 's' adds [member, ...] to a set.  ARGV[1]: the token; ARGV[2]: its lifetime.
local seen = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) <= seen then return 0 end
local writes = cjson.decode(ARGV[3])
local types = {z = 'zset', g = 'zset', s = 'set', h = 'string'}
-- a script is not rolled back if a command fails, so refuse before writing anything
for i = 2, #KEYS do
  local found, wanted = redis.call('TYPE', KEYS[i]).ok, types[writes[i - 1][1]]
  if found ~= 'none' and found ~= wanted then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' holds a ' .. found .. ', not a ' .. wanted)
  end
end
for i = 2, #KEYS do
  local key, write = KEYS[i], writes[i - 1]
  local expires = write[2]
  if write[1] == 'z' or write[1] == 'g' then
    local command = write[1] == 'z' and 'ZINCRBY' or 'ZADD'
    for member, amount in pairs(write[3]) do
      redis.call(command, key, amount, member)
    end
    -- a bucket's expiry follows from its start alone
    redis.call('EXPIREAT', key, expires)
  elseif write[1] == 'h' then
    local names = write[3]
    for first = 1, #names, 1000 do
      redis.call('PFADD', key, unpack(names, first, math.min(first + 999, #names)))
    end
    redis.call('EXPIREAT', key, expires)
  else
    for _, member in ipairs(write[3]) do
      redis.call('SADD', key, member)
    end
    -- a children set lives as long as its longest-lived bucket
    if redis.call('EXPIRETIME', key) < expires then
      redis.call('EXPIREAT', key, expires)
    end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1

-- Unique counts over pieces, for one pk tag.  KEYS[1]: the tag's hw:{tag}:folded key;
-- KEYS[2..]: HyperLogLogs, count by count.  ARGV[1]: the fold's reach when the tag was never
-- folded; ARGV[2]: the reach these pieces need ('' if none); ARGV[3]: the number of counts,
-- then per count how many keys it unites, then per key its finest bucket if it is to be
-- read only while not folded ('-' if always).  One PFCOUNT per count.
local reach = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if ARGV[2] ~= '' and reach < tonumber(ARGV[2]) then return {'stale', string.format('%d', reach)} end
local out, k, a = {}, 2, 4
for i = 1, tonumber(ARGV[3]) do
  local n = tonumber(ARGV[a])
  local united = {}
  for j = 1, n do
    local flag = ARGV[a + j]
    if flag == '-' or tonumber(flag) > reach then united[#united + 1] = KEYS[k + j - 1] end
  end
  out[i] = #united > 0 and redis.call('PFCOUNT', unpack(united)) or 0
  k = k + n
  a = a + n + 1
end
return out

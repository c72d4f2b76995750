-- ARGV: the number of parts, then per part: the member count, the members, the piece count
-- and '1' if the part is a gauge (the latest piece holding a value wins) or '0' (a sum)
local out = {}
local a, k = 2, 1
for p = 1, tonumber(ARGV[1]) do
  local count = tonumber(ARGV[a])
  local first, last = a + 1, a + count
  local pieces = tonumber(ARGV[last + 1])
  local latest = ARGV[last + 2] == '1'
  a = last + 3
  local sums = {}
  for i = 1, count do sums[i] = 0 end
  for q = 1, pieces do
    local scores = redis.call('ZMSCORE', KEYS[k], unpack(ARGV, first, last))
    k = k + 1
    for i = 1, count do
      if scores[i] then
        if latest then sums[i] = tonumber(scores[i]) else sums[i] = sums[i] + tonumber(scores[i]) end
      end
    end
  end
  local texts = {}
  for i = 1, count do texts[i] = string.format('%.17g', sums[i]) end
  out[p] = texts
end
return out

-- Totals of members over pieces, for one pk tag.  KEYS[1]: the tag's hw:{tag}:folded key;
-- KEYS[2..]: the pieces' keys, part by part.  ARGV[1]: the fold's reach when the tag was
-- never folded; ARGV[2]: the reach these pieces need ('' if none); ARGV[3]: the number of
-- parts, then per part: the member count, the members, the piece count, '1' if the part is
-- a gauge (the latest piece holding a value wins) or '0' (a sum), then per piece its
-- finest bucket if it is to be read only while not folded ('-' if always).
-- Returns {'stale', reach} if the fold has not reached what the pieces need, else one list
-- of totals per part.
local reach = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if ARGV[2] ~= '' and reach < tonumber(ARGV[2]) then return {'stale', string.format('%d', reach)} end
local out = {}
local a, k = 4, 2
for p = 1, tonumber(ARGV[3]) do
  local count = tonumber(ARGV[a])
  local first, last = a + 1, a + count
  local pieces = tonumber(ARGV[last + 1])
  local latest = ARGV[last + 2] == '1'
  local flags = last + 3
  a = flags + pieces
  local sums = {}
  for i = 1, count do sums[i] = 0 end
  for q = 1, pieces do
    local flag = ARGV[flags + q - 1]
    if flag == '-' or tonumber(flag) > reach then
      local scores = redis.call('ZMSCORE', KEYS[k], unpack(ARGV, first, last))
      for i = 1, count do
        if scores[i] then
          if latest then sums[i] = tonumber(scores[i]) else sums[i] = sums[i] + tonumber(scores[i]) end
        end
      end
    end
    k = k + 1
  end
  local texts = {}
  for i = 1, count do texts[i] = string.format('%.17g', sums[i]) end
  out[p] = texts
end
return out

-- Quantiles of distributions over pieces, for one pk tag.  KEYS[1]: the tag's
-- hw:{tag}:folded key; KEYS[2..]: sketches, read by read.  ARGV[1]: the fold's reach when
-- the tag was never folded; ARGV[2]: the reach these pieces need ('' if none); ARGV[3]:
-- gamma; ARGV[4]: the number of reads, then per read: how many quantiles it answers, the
-- quantiles, how many sketches it merges, then per sketch its finest bucket if it is to be
-- read only while not folded ('-' if always).  A read merges its sketches (ZUNION adds the counts), puts the sketch
-- buckets in the order of their values (n<i> by falling i, z, p<i> by rising i) and
-- answers each nearest-rank quantile: the first bucket with at least q of the count at or
-- below it (as hailwhale.model.sketch.quantile).  Returns {'stale', reach} or the values,
-- read by read.
local reach = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if ARGV[2] ~= '' and reach < tonumber(ARGV[2]) then return {'stale', string.format('%d', reach)} end
local gamma = tonumber(ARGV[3])
local function sort_key(name)
  if name == 'z' then return 0 end
  local index = tonumber(string.sub(name, 2))
  if string.sub(name, 1, 1) == 'p' then return 1e9 + index end
  return -1e9 - index
end
local function value_of(name)
  if name == 'z' then return 0 end
  local magnitude = 2 * math.pow(gamma, tonumber(string.sub(name, 2))) / (gamma + 1)
  if string.sub(name, 1, 1) == 'p' then return magnitude end
  return -magnitude
end
local out, k, a = {}, 2, 5
for r = 1, tonumber(ARGV[4]) do
  local qs = {}
  for j = 1, tonumber(ARGV[a]) do qs[j] = tonumber(ARGV[a + j]) end
  a = a + 1 + #qs
  local n = tonumber(ARGV[a])
  local merged = {}
  for j = 1, n do
    local flag = ARGV[a + j]
    if flag == '-' or tonumber(flag) > reach then merged[#merged + 1] = KEYS[k + j - 1] end
  end
  k = k + n
  a = a + 1 + n
  local buckets, total = {}, 0
  if #merged > 0 then
    local args = {'ZUNION', #merged}
    for _, name in ipairs(merged) do args[#args + 1] = name end
    args[#args + 1] = 'WITHSCORES'
    local flat = redis.call(unpack(args))
    for i = 1, #flat, 2 do
      local count = tonumber(flat[i + 1])
      buckets[#buckets + 1] = {sort_key(flat[i]), flat[i], count}
      total = total + count
    end
    table.sort(buckets, function(x, y) return x[1] < y[1] end)
  end
  for _, q in ipairs(qs) do
    local answer = 0
    if total > 0 then
      local rank, seen = q * total - 1e-12 * total, 0
      answer = value_of(buckets[#buckets][2])
      for _, entry in ipairs(buckets) do
        seen = seen + entry[3]
        if seen >= rank then
          answer = value_of(entry[2])
          break
        end
      end
    end
    out[#out + 1] = string.format('%.17g', answer)
  end
end
return out

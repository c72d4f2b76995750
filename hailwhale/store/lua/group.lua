#!lua flags=no-writes
-- KEYS: the data keys, metric by metric, piece by piece; then the parent's children set;
-- last, the tag's hw:{tag}:folded key.  ARGV[8]: the fold's reach when the tag was never
-- folded; ARGV[9]: the reach the pieces need ('' if none); ARGV[10..]: per piece its finest
-- bucket if it is to be read only while not folded ('-' if always).
local pieces, metrics = tonumber(ARGV[1]), tonumber(ARGV[2])
local num, den, present = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local descending, limit = ARGV[6] == '1', tonumber(ARGV[7])
local reach = tonumber(redis.call('GET', KEYS[#KEYS]) or ARGV[8])
if ARGV[9] ~= '' and reach < tonumber(ARGV[9]) then return {'stale', string.format('%d', reach)} end
local active = {}
for q = 1, pieces do
  local flag = ARGV[9 + q]
  if flag == '-' or tonumber(flag) > reach then active[#active + 1] = q end
end
local sign = descending and -1 or 1
local function key(m, q) return KEYS[(m - 1) * pieces + q] end
local function union(m, weight)
  -- ZUNION answers in score order (then by name): weighted by -1, the largest first
  if #active == 0 then return {} end
  local args = {'ZUNION', #active}
  for _, q in ipairs(active) do args[#args + 1] = key(m, q) end
  args[#args + 1] = 'WEIGHTS'
  for _ = 1, #active do args[#args + 1] = weight end
  args[#args + 1] = 'WITHSCORES'
  return redis.call(unpack(args))
end
local function bytewise_before(a, b)
  -- Lua's < on strings follows the server's locale; ties must break by bytes, as ZUNION does
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function better(a, sa, b, sb)
  if sa ~= sb then
    if descending then return sa > sb else return sa < sb end
  end
  return bytewise_before(a, b)
end
-- the best `limit` so far, in order (an insertion list: limits are small); with a large
-- limit, everything is collected and sorted once at the end
local small = limit > 0 and limit <= 64
local best, seen, unsorted = {}, {}, false
local function consider(member, score)
  local n = #best
  if not small then
    best[n + 1] = {member, score}
    unsorted = true
    return
  end
  if n >= limit and not better(member, score, best[n][1], best[n][2]) then return end
  local i = n
  while i > 0 and better(member, score, best[i][1], best[i][2]) do
    best[i + 1] = best[i]
    i = i - 1
  end
  best[i + 1] = {member, score}
  if #best > limit then best[#best] = nil end
end
local function finish()
  if unsorted then
    table.sort(best, function(x, y) return better(x[1], x[2], y[1], y[2]) end)
    if limit > 0 then
      for i = #best, limit + 1, -1 do best[i] = nil end
    end
    unsorted = false
  end
end
if den == 0 then
  local flat = union(num, sign)
  local count = #flat / 2
  if limit > 0 and limit < count then count = limit end
  for i = 1, #flat, 2 do seen[flat[i]] = true end
  for i = 1, count do best[i] = {flat[2 * i - 1], sign * tonumber(flat[2 * i])} end
else
  local above = {}
  local flat = union(num, 1)
  for i = 1, #flat, 2 do above[flat[i]] = tonumber(flat[i + 1]) end
  flat = union(den, 1)
  for i = 1, #flat, 2 do
    local member, below = flat[i], tonumber(flat[i + 1])
    local score = 0
    if below ~= 0 then score = (above[member] or 0) / below end
    seen[member] = true
    consider(member, score)
  end
  for member in pairs(above) do
    if not seen[member] then
      seen[member] = true
      consider(member, 0)
    end
  end
end
-- children with no numbers for the sort score 0: look at them only if 0 could still make the cut
finish()
local n = #best
if not (limit > 0 and n >= limit and better(best[n][1], best[n][2], best[n][1], 0)) then
  local flat = union(present, 0)
  for i = 1, #flat, 2 do
    if not seen[flat[i]] then consider(flat[i], 0) end
  end
  finish()
end
local chosen = {}
for i, pair in ipairs(best) do chosen[i] = pair[1] end
n = #chosen
local out = {redis.call('SCARD', KEYS[#KEYS - 1]), chosen}
for m = 1, metrics do
  local sums = {}
  for i = 1, n do sums[i] = 0 end
  for _, q in ipairs(active) do
    for first = 1, n, 4000 do
      local last = math.min(first + 3999, n)
      local got = redis.call('ZMSCORE', key(m, q), unpack(chosen, first, last))
      for i = first, last do
        local score = got[i - first + 1]
        if score then sums[i] = sums[i] + tonumber(score) end
      end
    end
  end
  for i = 1, n do sums[i] = string.format('%.17g', sums[i]) end
  out[#out + 1] = sums
end
return out

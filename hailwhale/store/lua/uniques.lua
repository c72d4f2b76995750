-- ARGV: how many keys each count unites, in the order of KEYS; one PFCOUNT per count
local out, k = {}, 1
for i = 1, #ARGV do
  local n = tonumber(ARGV[i])
  out[i] = redis.call('PFCOUNT', unpack(KEYS, k, k + n - 1))
  k = k + n
end
return out

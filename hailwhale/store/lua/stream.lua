-- The record of a RabbitMQ stream's batches (stream_log.py), and who may write it.
-- KEYS[1]: the holder key (the daemon reading the stream, with a lease),
-- KEYS[2]: the record key.
-- ARGV: this daemon's id, the lease (ms), the record expected ('' for none), the new
-- record ('' to only take or renew the lease).
-- Returns {1, record} when this daemon holds the lease (taken or renewed) and, if a new
-- record was given, the record is now the new one (it was the one expected, or already
-- the new one: a write repeated after a lost reply); {0, holder or '', record} otherwise.
local holder = redis.call('GET', KEYS[1])
local record = redis.call('GET', KEYS[2]) or ''
if holder and holder ~= ARGV[1] then return {0, holder, record} end
if ARGV[4] ~= '' and record ~= ARGV[4] then
  if record ~= ARGV[3] then return {0, holder or '', record} end
  redis.call('SET', KEYS[2], ARGV[4])
  record = ARGV[4]
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, record}

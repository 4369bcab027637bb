-- Retains one event of a retained topic (native cluster). KEYS: the stream ({p}{t:TOPIC}:rt)
-- and the sequence ({p}{t:TOPIC}:rt-seq). ARGV: (unused), (unused), max count, max age in ms
-- (0 = count only), id, event ('' = none), data, ts (the publisher's, ms).
-- Appends to the stream with the next per-topic sequence,
-- trims by count (exact MAXLEN) and by age (MINID, by this Redis server's clock: stream ids are
-- its time), and returns the sequence.
local count, age = tonumber(ARGV[3]), tonumber(ARGV[4])
local sk, qk = KEYS[1], KEYS[2]
local seq = redis.call('INCR', qk)
if ARGV[6] ~= '' then
  redis.call('XADD', sk, 'MAXLEN', count, '*', 'seq', seq, 'id', ARGV[5], 'data', ARGV[7], 'ts', ARGV[8], 'event', ARGV[6])
else
  redis.call('XADD', sk, 'MAXLEN', count, '*', 'seq', seq, 'id', ARGV[5], 'data', ARGV[7], 'ts', ARGV[8])
end
if age > 0 then
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('XTRIM', sk, 'MINID', ms - age)
  -- A topic nobody publishes to for a whole window is forgotten (stream and sequence).
  redis.call('PEXPIRE', sk, age)
  redis.call('PEXPIRE', qk, age)
end
return seq

-- A retained topic's snapshot for one resume (native cluster). KEYS: the stream and the
-- sequence ({p}{t:TOPIC}:rt, :rt-seq). ARGV: max age in ms (0 = count only). Trims by age first, then returns { last sequence given out (0 = none),
-- XRANGE of the whole stream }.
local age = tonumber(ARGV[1])
local sk, qk = KEYS[1], KEYS[2]
if age > 0 then
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  redis.call('XTRIM', sk, 'MINID', ms - age)
end
return { tonumber(redis.call('GET', qk) or '0'), redis.call('XRANGE', sk, '-', '+') }

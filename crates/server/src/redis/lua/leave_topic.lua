-- A node's last subscriber of a topic left: drop its placement entry, and the topic from the
-- topic list if no node holds it any more (atomically, against another node joining).
-- ARGV: prefix, topic, node
local p, t, node = ARGV[1], ARGV[2], ARGV[3]
redis.call('HDEL', p .. 'place:' .. t, node)
if redis.call('HLEN', p .. 'place:' .. t) == 0 then
  redis.call('ZREM', p .. 'topics', t)
end
return 0

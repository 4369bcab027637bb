-- Removes everything a node recorded: its placement, tails, connection records, and its entry
-- in the node set. ARGV: prefix, node id, 1 to purge only if the node's identity has expired
-- (a dead node) or 0 to purge unconditionally (a node leaving, or starting again).
-- Returns 1 if purged, 0 if the node is alive and was kept.
local p, node, only_dead = ARGV[1], ARGV[2], ARGV[3] == '1'
if only_dead and redis.call('EXISTS', p .. 'node:' .. node) == 1 then
  return 0
end
for _, t in ipairs(redis.call('SMEMBERS', p .. 'node-topics:' .. node)) do
  redis.call('HDEL', p .. 'tails:' .. t, node)
  redis.call('HDEL', p .. 'place:' .. t, node)
  if redis.call('HLEN', p .. 'place:' .. t) == 0 then
    redis.call('ZREM', p .. 'topics', t)
  end
end
for _, c in ipairs(redis.call('SMEMBERS', p .. 'node-conns:' .. node)) do
  local rec = redis.call('GET', p .. 'conn:' .. c)
  if rec then
    local ok, r = pcall(cjson.decode, rec)
    if ok and type(r) == 'table' and type(r.topics) == 'table' then
      for _, t in ipairs(r.topics) do
        redis.call('ZREM', p .. 'topic-conns:' .. t, c)
      end
    end
  end
  redis.call('DEL', p .. 'conn:' .. c)
  redis.call('ZREM', p .. 'conns', c)
end
redis.call('DEL', p .. 'node-topics:' .. node, p .. 'node-conns:' .. node)
redis.call('SREM', p .. 'nodes', node)
return 1

-- The cluster-wide topic index: which nodes hold subscribers of each topic. KEYS[1]: the
-- sorted set of topics ({p}{g}:topics); the per-topic node sets share its start.
-- ARGV: node, 'add' or 'del', topic... Idempotent, so a node re-asserts its whole list every
-- heartbeat. A topic leaves the sorted set when no node holds it any more.
local topics = KEYS[1]
local base = string.sub(topics, 1, #topics - #'topics')
local node, op = ARGV[1], ARGV[2]
for i = 3, #ARGV do
  local t = ARGV[i]
  local set = base .. 'tn:' .. t
  if op == 'add' then
    redis.call('SADD', set, node)
    redis.call('ZADD', topics, 0, t)
  else
    redis.call('SREM', set, node)
    if redis.call('SCARD', set) == 0 then
      redis.call('ZREM', topics, t)
    end
  end
end
return 0

-- Removes everything a node recorded in its own slot. KEYS[1]: the node's placement hash
-- ({p}{n:ID}:place); the node's other keys share its start. ARGV[1]: 1 to purge only if the
-- node's identity has expired (a dead node), 0 to purge unconditionally (leaving, starting
-- again, rewriting). Returns {1, topic, ...} with the topics it held subscribers of (the caller
-- takes the node out of the cluster-wide topic index), or {0} if the node is alive and kept.
local place = KEYS[1]
local base = string.sub(place, 1, #place - #'place')
if ARGV[1] == '1' and redis.call('EXISTS', base .. 'ident') == 1 then
  return { 0 }
end
local out = { 1 }
local kv = redis.call('HGETALL', place)
for i = 1, #kv, 2 do
  local t = kv[i]
  if t ~= '#gen' then
    redis.call('DEL', base .. 'tc:' .. t)
    local subs = tonumber(string.match(kv[i + 1], '^(%d+)')) or 0
    if subs > 0 then table.insert(out, t) end
  end
end
redis.call('DEL', place, base .. 'topics', base .. 'conns', base .. 'recs')
return out

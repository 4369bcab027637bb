-- Which live nodes hold connections of a topic. ARGV: prefix, topic.
-- Returns a flat list: node, address, subscribers, tails, ... for each node whose identity key
-- still exists (a node that died without leaving is ignored from the moment its TTL expires).
local p, t = ARGV[1], ARGV[2]
local counts = {}
local order = {}
local function add(kv, slot)
  for i = 1, #kv, 2 do
    local node = kv[i]
    if counts[node] == nil then
      counts[node] = { 0, 0 }
      table.insert(order, node)
    end
    counts[node][slot] = tonumber(kv[i + 1]) or 0
  end
end
add(redis.call('HGETALL', p .. 'place:' .. t), 1)
add(redis.call('HGETALL', p .. 'tails:' .. t), 2)
local out = {}
for _, node in ipairs(order) do
  local ident = redis.call('GET', p .. 'node:' .. node)
  if ident then
    local ok, id = pcall(cjson.decode, ident)
    if ok and type(id) == 'table' and id.addr then
      table.insert(out, node)
      table.insert(out, id.addr)
      table.insert(out, counts[node][1])
      table.insert(out, counts[node][2])
    end
  end
end
return out

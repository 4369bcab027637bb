-- A page of topics with their connection counts (summed over live nodes), by name, after a
-- cursor. ARGV: prefix, after ('' = from the start), how many (page size + 1).
-- Returns: total, then topic, count, topic, count...
local p, after, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
local alive = {}
local function live(node)
  if alive[node] == nil then
    alive[node] = redis.call('EXISTS', p .. 'node:' .. node) == 1
  end
  return alive[node]
end
local out = {}
local found = 0
local min = (after == '') and '-' or ('(' .. after)
while found < want do
  local topics = redis.call('ZRANGEBYLEX', p .. 'topics', min, '+', 'LIMIT', 0, want)
  if #topics == 0 then break end
  for _, t in ipairs(topics) do
    min = '(' .. t
    local kv = redis.call('HGETALL', p .. 'place:' .. t)
    local n = 0
    for i = 1, #kv, 2 do
      if live(kv[i]) then n = n + (tonumber(kv[i + 1]) or 0) end
    end
    if n > 0 then
      table.insert(out, t)
      table.insert(out, n)
      found = found + 1
      if found >= want then break end
    end
  end
end
table.insert(out, 1, redis.call('ZCARD', p .. 'topics'))
return out

-- A page of connection records, by id, after a cursor. ARGV: prefix, after ('' = from the
-- start), how many (page size + 1), topic ('' = all). Records of dead nodes are skipped.
-- Returns: total, then the records (JSON) in id order.
local p, after, want, topic = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local set = (topic == '') and (p .. 'conns') or (p .. 'topic-conns:' .. topic)
local alive = {}
local function live(node)
  if alive[node] == nil then
    alive[node] = redis.call('EXISTS', p .. 'node:' .. node) == 1
  end
  return alive[node]
end
local out = {}
local min = (after == '') and '-' or ('(' .. after)
while #out < want do
  local ids = redis.call('ZRANGEBYLEX', set, min, '+', 'LIMIT', 0, want)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    min = '(' .. id
    local rec = redis.call('GET', p .. 'conn:' .. id)
    if rec then
      local ok, r = pcall(cjson.decode, rec)
      if ok and type(r) == 'table' and live(r.node) then
        table.insert(out, rec)
        if #out >= want then break end
      end
    end
  end
end
local total = 0
if topic == '' then
  for _, node in ipairs(redis.call('SMEMBERS', p .. 'nodes')) do
    if live(node) then total = total + redis.call('SCARD', p .. 'node-conns:' .. node) end
  end
else
  local kv = redis.call('HGETALL', p .. 'place:' .. topic)
  for i = 1, #kv, 2 do
    if live(kv[i]) then total = total + (tonumber(kv[i + 1]) or 0) end
  end
end
table.insert(out, 1, total)
return out

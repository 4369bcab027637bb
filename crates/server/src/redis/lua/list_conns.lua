-- A page of one node's connection records after a cursor. KEYS[1]: the sorted set of ids
-- ({p}{n:ID}:conns, or {p}{n:ID}:tc:TOPIC for one topic's), KEYS[2]: the records hash
-- ({p}{n:ID}:recs). ARGV: after ('' = from the start), how many.
-- Returns: the set's size, then the records (JSON) in id order.
local after, want = ARGV[1], tonumber(ARGV[2])
local min = (after == '') and '-' or ('(' .. after)
local out = { redis.call('ZCARD', KEYS[1]) }
local ids = redis.call('ZRANGEBYLEX', KEYS[1], min, '+', 'LIMIT', 0, want)
if #ids > 0 then
  for _, rec in ipairs(redis.call('HMGET', KEYS[2], unpack(ids))) do
    if rec then table.insert(out, rec) end
  end
end
return out

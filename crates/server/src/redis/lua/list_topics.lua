-- A page of the cluster-wide topic index after a cursor. KEYS[1]: {p}{g}:topics.
-- ARGV: after ('' = from the start), how many. Returns: the index's size, then for each topic
-- its name and the nodes that hold it (an array); the caller keeps live nodes and adds up
-- their counts.
local topics = KEYS[1]
local base = string.sub(topics, 1, #topics - #'topics')
local after, want = ARGV[1], tonumber(ARGV[2])
local min = (after == '') and '-' or ('(' .. after)
local out = { redis.call('ZCARD', topics) }
for _, t in ipairs(redis.call('ZRANGEBYLEX', topics, min, '+', 'LIMIT', 0, want)) do
  table.insert(out, t)
  table.insert(out, redis.call('SMEMBERS', base .. 'tn:' .. t))
end
return out

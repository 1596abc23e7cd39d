#!lua name=trio_scrape_v1
--[[
trio-scrape's shared frontier: every operation that must be atomic, as Redis Functions.

Times are the server's (TIME, in milliseconds): no client clock is ever compared with another.
KEYS[1] is the crawl's key prefix P ("trio-scrape:<crawl id>:"); every key below starts with it:

  P meta           hash: settings, queued, leased, done, seen, scheduled, errors, refused,
                   reaped, tokens (lease token counter)
  P s:<bucket>     the seen-set, in 65,536 hashes (so each stays a compact listpack): the url
                   key digest's last 12 hex digits -> depth * 2 + (1 once handed out); the
                   digest's first 4 hex digits name the bucket
  P better         hash: digest -> [depth, referrer], a queued URL found at a smaller depth
  P rv, P rvd      hash digest -> "<origin>\t<entry>" and zset digest -> depth: revisits of
                   handed-out URLs found at a smaller depth, queued when the crawl runs dry
  P q:<origin>     list: the host's queue, entries "<digest>\t<json request>" where the
                   request is [url, depth, referrer, attempts, sitemap, lastmod, revisit]
                   and, for a scraper's request, an 8th field: its JSON (Request.to_json) as
                   one string, which the functions pass through untouched; a scraper's
                   request's digest is its dedup key's (frontier/redis.py, _request_digest)
  P ready          zset: origins with queued work and a free slot, scored by when they may start
  P h:<origin>     hash: n (in flight), next (earliest next lease), nt and pn (with a
                   delay: the token of the lease that set next, and next before it, so a
                   lease never sent gives its delay back), start (earliest next
                   request start: the last start plus its jittered delay), pause (paused
                   until), cdelay (robots.txt Crawl-delay, ms), robots (1 once robots.txt
                   is known); with autothrottle: lim (the fleet's concurrency limit, a
                   float), best (best latency, ms), rl (responses until the next decrease)
  P pz             zset: origin -> when its pause was set (lease answers carry recent ones)
  P known          set: every origin ever queued (for status)
  P lease          hash: digest -> "<token>\t<origin>\t<slot>\t<entry>"; slot is 1 while
                   the request holds one of its host's in-flight slots (until its fetch ends)
  P exp            zset: digest -> lease expiry
  P rec            stream: one entry per committed record (fields w = writer, r = record,
                   and i = the page's items as a JSON list when a scraper's page has any)
  P w              hash: writer -> "<offset>\t<last stream id>" (what the writer's file holds)
  P wl:<writer>    string: the owner writing that file now (expires; dropped on exit)
  P procs          zset: process -> last time it was seen
  P pages          hash: url digest -> "<round>\t<memo>": what a recrawl needs of each page
                   fetched (a PageMemo as JSON: [status, etag, last_modified, sha256, links]),
                   and the round that stored it; P prev: digest -> the memo of an earlier
                   round, for a page stored again in this round (a page done again after
                   a kill is compared with the last round, not with itself)

Rounds (--recrawl): meta has round (absent: 1), known (pages stored before this round) and
reached (those stored again in it); c:<change> count the round's records by data.change.

Politeness arguments come with each call, from the calling process's settings: per_host, and
gate, two flags: its first character "1" while robots.txt gates a new host to one request at
a time, its second "a" with autothrottle (the host's shared limit 'lim' caps per_host).
]]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function limit_of(hk, per_host, gate)
  if string.sub(gate, 1, 1) == '1' and redis.call('HGET', hk, 'robots') ~= '1' then
    return 1
  end
  if string.sub(gate, 2, 2) == 'a' then
    return math.min(per_host, math.floor(tonumber(redis.call('HGET', hk, 'lim')) or 1))
  end
  return per_host
end

-- Autothrottle, for the whole fleet: the same AIMD as HostLimiter._adapt, on the host's
-- shared state, fed by every process's finished fetches (latency in ms).
local function adapt(hk, per_host, latency, failed)
  local h = redis.call('HMGET', hk, 'lim', 'best', 'rl')
  local lim = tonumber(h[1]) or 1
  local best = math.min(tonumber(h[2]) or latency, latency)
  local left = (tonumber(h[3]) or 0) - 1
  if failed or latency > 2 * best + 50 then
    if left <= 0 then
      lim = math.max(1, lim / 2)
      left = math.max(1, math.floor(lim))
    end
  else
    lim = math.min(per_host, lim + 1 / lim)
  end
  redis.call('HSET', hk, 'lim', lim, 'best', best, 'rl', left)
end

-- Start no request to an origin for pause_ms (Retry-After, back-off); remembered in 'pz' so
-- that every process hears of it with its next lease.
local function pause_host(P, origin, now, pause_ms)
  local hk = P .. 'h:' .. origin
  local until_ms = now + pause_ms
  if until_ms > (tonumber(redis.call('HGET', hk, 'pause')) or 0) then
    redis.call('HSET', hk, 'pause', until_ms)
    redis.call('ZADD', P .. 'pz', now, origin)
  end
end

-- Put an origin in 'ready' at the time it may start, or take it out (no work, or full).
local function reschedule(P, origin, per_host, gate)
  if redis.call('LLEN', P .. 'q:' .. origin) == 0 then
    redis.call('ZREM', P .. 'ready', origin)
    return
  end
  local hk = P .. 'h:' .. origin
  local h = redis.call('HMGET', hk, 'n', 'next', 'pause')
  if (tonumber(h[1]) or 0) >= limit_of(hk, per_host, gate) then
    redis.call('ZREM', P .. 'ready', origin)
    return
  end
  local at = math.max(tonumber(h[2]) or 0, tonumber(h[3]) or 0)
  redis.call('ZADD', P .. 'ready', at, origin)
end

local function seen_key(P, digest)
  return P .. 's:' .. string.sub(digest, 1, 4), string.sub(digest, 5)
end

-- An entry with another depth and referrer (and the revisit flag).
local function rebuild(entry, depth, referrer, revisit)
  local tab = string.find(entry, '\t', 1, true)
  local fields = cjson.decode(string.sub(entry, tab + 1))
  fields[2] = depth
  fields[3] = referrer
  if revisit then
    fields = { fields[1], depth, referrer, 0, false, cjson.null, true }
  end
  return string.sub(entry, 1, tab) .. cjson.encode(fields)
end

-- Mark a URL handed out, at its smallest known depth; return the entry to hand out and
-- that depth.
local function hand_out(P, digest, entry)
  local key, field = seen_key(P, digest)
  local better = redis.call('HGET', P .. 'better', digest)
  if better then
    redis.call('HDEL', P .. 'better', digest)
    local b = cjson.decode(better)
    local tab = string.find(entry, '\t', 1, true)
    local current = cjson.decode(string.sub(entry, tab + 1))[2]
    if b[1] < current then
      entry = rebuild(entry, b[1], b[2], false)
    end
  end
  local tab = string.find(entry, '\t', 1, true)
  local depth = cjson.decode(string.sub(entry, tab + 1))[2]
  local known = tonumber(redis.call('HGET', key, field))
  if known and math.floor(known / 2) < depth then
    depth = math.floor(known / 2)
  end
  redis.call('HSET', key, field, depth * 2 + 1)
  return entry, depth
end

-- Queue the pending revisits of the smallest depth (the crawl has run dry).
local function queue_revisits(P, per_host, gate)
  local first = redis.call('ZRANGE', P .. 'rvd', 0, 0, 'WITHSCORES')
  if not first[2] then
    return
  end
  local depth = tonumber(first[2])
  local touched = {}
  local count = 0
  for _, digest in ipairs(redis.call('ZRANGEBYSCORE', P .. 'rvd', depth, depth)) do
    local value = redis.call('HGET', P .. 'rv', digest)
    redis.call('HDEL', P .. 'rv', digest)
    redis.call('ZREM', P .. 'rvd', digest)
    if value then
      local tab = string.find(value, '\t', 1, true)
      local origin = string.sub(value, 1, tab - 1)
      local key, field = seen_key(P, digest)
      redis.call('HSET', key, field, depth * 2)
      redis.call('RPUSH', P .. 'q:' .. origin, string.sub(value, tab + 1))
      count = count + 1
      touched[origin] = true
    end
  end
  redis.call('HINCRBY', P .. 'meta', 'queued', count)
  for origin in pairs(touched) do
    reschedule(P, origin, per_host, gate)
  end
end

-- What the last round stored of a page (its memo as JSON), or "" if it is new.
local function memo_of(P, digest, round)
  local stored = redis.call('HGET', P .. 'pages', digest)
  if not stored then
    return ''
  end
  local tab = string.find(stored, '\t', 1, true)
  if tonumber(string.sub(stored, 1, tab - 1)) < round then
    return string.sub(stored, tab + 1)
  end
  return redis.call('HGET', P .. 'prev', digest) or ''
end

-- Store a page's memo for the next round, keeping the last round's while this one runs.
local function remember(P, digest, memo)
  local round = tonumber(redis.call('HGET', P .. 'meta', 'round')) or 1
  local stored = redis.call('HGET', P .. 'pages', digest)
  if stored then
    local tab = string.find(stored, '\t', 1, true)
    if tonumber(string.sub(stored, 1, tab - 1)) < round then
      redis.call('HSET', P .. 'prev', digest, string.sub(stored, tab + 1))
      redis.call('HINCRBY', P .. 'meta', 'reached', 1)
    end
  end
  redis.call('HSET', P .. 'pages', digest, round .. '\t' .. memo)
end

local function counters(P)
  return redis.call('HMGET', P .. 'meta', 'queued', 'leased', 'seen', 'done', 'limited')
end

-- Split a lease value "<token>\t<origin>\t<slot>\t<entry>".
local function parse_lease(value)
  local a = string.find(value, '\t', 1, true)
  local b = string.find(value, '\t', a + 1, true)
  local origin = string.sub(value, a + 1, b - 1)
  return string.sub(value, 1, a - 1), origin, string.sub(value, b + 1, b + 1),
    string.sub(value, b + 3)
end

-- The process a lease token belongs to (tokens are "<owner>:<counter>").
local function owner_of(token)
  return string.match(token, '^(.*):%d+$')
end

-- A slot of an origin's host is given back; its owner holds one less there.
local function free_slot(P, origin, token)
  local hk = P .. 'h:' .. origin
  if (tonumber(redis.call('HINCRBY', hk, 'n', -1))) < 0 then
    redis.call('HSET', hk, 'n', 0)
  end
  local owner = owner_of(token)
  if owner and tonumber(redis.call('HINCRBY', hk, 'o:' .. owner, -1)) <= 0 then
    redis.call('HDEL', hk, 'o:' .. owner)
  end
end

-- End one lease (it exists): free its host's slot if it still holds it. Returns the origin
-- and the entry.
local function end_lease(P, digest, value)
  redis.call('HDEL', P .. 'lease', digest)
  redis.call('ZREM', P .. 'exp', digest)
  local token, origin, slot, entry = parse_lease(value)
  if slot == '1' then
    free_slot(P, origin, token)
  end
  redis.call('HINCRBY', P .. 'meta', 'leased', -1)
  return origin, entry
end

-- Expired leases go back to the front of their host's queue.
local function reap(P, now, per_host, gate)
  local expired = redis.call('ZRANGEBYSCORE', P .. 'exp', '-inf', now, 'LIMIT', 0, 256)
  local touched = {}
  for _, digest in ipairs(expired) do
    local value = redis.call('HGET', P .. 'lease', digest)
    if value then
      local origin, entry = end_lease(P, digest, value)
      redis.call('LPUSH', P .. 'q:' .. origin, entry)
      redis.call('HINCRBY', P .. 'meta', 'queued', 1)
      redis.call('HINCRBY', P .. 'meta', 'reaped', 1)
      touched[origin] = true
    else
      redis.call('ZREM', P .. 'exp', digest)
    end
  end
  for origin in pairs(touched) do
    reschedule(P, origin, per_host, gate)
  end
end

-- Each digest's shortest known depth, or -1 when it is not in the seen-set: ARGV = digests.
redis.register_function {
  function_name = 'ts_depths',
  flags = { 'no-writes' },
  callback = function(keys, args)
    local P = keys[1]
    local out = {}
    for i = 1, #args do
      local key, field = seen_key(P, args[i])
      local known = tonumber(redis.call('HGET', key, field))
      out[i] = known and math.floor(known / 2) or -1
    end
    return out
  end,
}

-- One URL found by a page (or given as a seed): add it if unseen (and `kept`: only URLs the
-- caller's scope wants are added; the others only update a seen URL found nearer), or note
-- a seen one found at a smaller depth. `a` is the add's state: depth, referrer, revisit,
-- max_pages, scheduled, added, limited, touched. `entry` is the queue entry, or nil to build
-- it from the URL as JSON and the add's entry tail (`a.tail`: depth, referrer and defaults).
local function admit(P, a, digest, origin, entry, url_json, kept)
  local key, field = seen_key(P, digest)
  local known = tonumber(redis.call('HGET', key, field))
  if not known then
    if not kept then
      return
    end
    if a.max_pages > 0 and a.scheduled >= a.max_pages then
      if a.limited == 0 then
        redis.call('HSET', P .. 'meta', 'limited', 1)  -- the fleet stopped at max_pages
      end
      a.limited = 1
      return
    end
    redis.call('HSET', key, field, a.depth * 2)
    redis.call('RPUSH', P .. 'q:' .. origin, entry or (digest .. '\t[' .. url_json .. a.tail))
    a.added = a.added + 1
    a.scheduled = a.scheduled + 1
    if not a.touched[origin] then
      a.touched[origin] = true
      redis.call('SADD', P .. 'known', origin)
    end
  elseif math.floor(known / 2) > a.depth then
    if known % 2 == 0 then -- still queued: handed out at this depth
      redis.call('HSET', key, field, a.depth * 2)
      redis.call('HSET', P .. 'better', digest, cjson.encode({ a.depth, a.referrer }))
    else
      redis.call('HSET', key, field, a.depth * 2 + 1)
      if a.revisit then
        entry = entry or (digest .. '\t[' .. url_json .. a.tail)
        local again = rebuild(entry, a.depth, a.referrer, true)
        redis.call('HSET', P .. 'rv', digest, origin .. '\t' .. again)
        redis.call('ZADD', P .. 'rvd', a.depth, digest)
      end
    end
  end
end

local function adding(P, max_pages)
  return {
    max_pages = max_pages,
    scheduled = tonumber(redis.call('HGET', P .. 'meta', 'scheduled')) or 0,
    added = 0, limited = 0, touched = {}, total = 0,
  }
end

-- The counters and schedules after adds.
local function added(P, a, per_host, gate)
  if a.added > 0 then
    local meta = P .. 'meta'
    redis.call('HINCRBY', meta, 'queued', a.added)
    redis.call('HINCRBY', meta, 'seen', a.added)
    redis.call('HSET', meta, 'scheduled', a.scheduled)
    for origin in pairs(a.touched) do
      reschedule(P, origin, per_host, gate)
    end
    a.total = a.total + a.added
    a.added = 0
    a.touched = {}
  end
end

-- A page's links as one string (sent with its completion, see ts_done): lines, each either
-- a group's head "=<depth>\t<revisit 0/1>\t<referrer as JSON>" or a link
-- "<+ (kept) or - (only if seen)><digest>\t<origin, "" if the last line's>\t<URL as JSON>".
local function admit_links(P, a, text)
  local origin = ''
  for line in string.gmatch(text, '[^\n]+') do
    if string.sub(line, 1, 1) == '=' then
      local t1 = string.find(line, '\t', 2, true)
      local t2 = string.find(line, '\t', t1 + 1, true)
      a.depth = tonumber(string.sub(line, 2, t1 - 1))
      a.revisit = string.sub(line, t1 + 1, t2 - 1) == '1'
      local referrer_json = string.sub(line, t2 + 1)
      a.referrer = cjson.decode(referrer_json)
      a.tail = ',' .. a.depth .. ',' .. referrer_json .. ',0,false,null,false]'
    else
      local t = string.find(line, '\t', 19, true)
      if t > 19 then
        origin = string.sub(line, 19, t - 1)
      end
      admit(P, a, string.sub(line, 2, 17), origin, nil, string.sub(line, t + 1),
        string.sub(line, 1, 1) == '+')
    end
  end
end

-- Add-if-unseen, or a seen URL found at a smaller depth. ARGV: per_host, gate, max_pages
-- (0: none), depth, referrer ("" with has_referrer 0), has_referrer, revisit (1: a handed-out
-- URL found nearer gets a revisit), then per URL: digest, origin, entry.
-- Returns {added, limit_reached, counters}.
redis.register_function('ts_add', function(keys, args)
  local P = keys[1]
  local per_host, gate = tonumber(args[1]), args[2]
  local a = adding(P, tonumber(args[3]))
  a.depth, a.referrer, a.revisit = tonumber(args[4]), args[5], args[7] == '1'
  if args[6] ~= '1' then
    a.referrer = cjson.null
  end
  for i = 8, #args, 3 do
    admit(P, a, args[i], args[i + 1], args[i + 2], nil, true)
  end
  added(P, a, per_host, gate)
  return { a.total, a.limited, counters(P) }
end)

-- Mark URLs handed out at a depth without queueing them (unless seen). ARGV: depth, digests.
redis.register_function('ts_seen', function(keys, args)
  local P = keys[1]
  local value = tonumber(args[1]) * 2 + 1
  local added = 0
  for i = 2, #args do
    local key, field = seen_key(P, args[i])
    added = added + redis.call('HSETNX', key, field, value)
  end
  if added > 0 then
    redis.call('HINCRBY', P .. 'meta', 'seen', added)
  end
  return counters(P)
end)

-- How long (ms) a process that asked for leases and got fewer than it asked stays in line
-- (`wait`) without asking again: a hungry process asks every 20 ms at most.
local HUNGRY_MS = 500

-- The other processes waiting for slots (asked within HUNGRY_MS and got fewer than they
-- asked), each {owner, when it was last handed a lease (0: never)}.
local function rivals_of(P, owner, now)
  redis.call('ZREMRANGEBYSCORE', P .. 'wait', '-inf', now - HUNGRY_MS)
  local rivals = {}
  for _, other in ipairs(redis.call('ZRANGE', P .. 'wait', 0, 199)) do
    if other ~= owner then
      rivals[#rivals + 1] = { other, tonumber(redis.call('ZSCORE', P .. 'served', other)) or 0 }
    end
  end
  return rivals
end

-- How many of a host's free slots the caller may take now, so that processes sharing a host
-- share its slots: each process waiting for slots is owed an even share of the host's limit
-- (floor(limit / processes waiting, the caller included)); past its share, a slot goes to the
-- caller only if every waiting process that holds fewer of the host's slots (or as many, and
-- was served longer ago) can have one of the other free slots. A slot the caller frees is
-- then not taken back in the same call while another process is owed it: that process takes
-- it with its next lease call (it asks every 20 ms at most while work is queued).
local function fair_take(hk, owner, served, rivals, limit, n)
  local free = limit - n
  if #rivals == 0 or free <= 0 then
    return free
  end
  local base = math.floor(limit / (#rivals + 1))
  local mine = tonumber(redis.call('HGET', hk, 'o:' .. owner)) or 0
  local fields = {}
  for i, rival in ipairs(rivals) do
    fields[i] = 'o:' .. rival[1]
  end
  local held = redis.call('HMGET', hk, unpack(fields))
  local take = 0
  while free > 0 do
    if mine >= base then
      local ahead = 0
      for i, rival in ipairs(rivals) do
        local c = tonumber(held[i]) or 0
        if c < mine or (c == mine and (rival[2] < served
            or (rival[2] == served and rival[1] < owner))) then
          ahead = ahead + 1
        end
      end
      if ahead >= free then
        break
      end
    end
    take, mine, free = take + 1, mine + 1, free - 1
  end
  return take
end

-- Lease up to max_n requests from ready hosts. ARGV: per_host, gate, owner, max_n, lease_ms,
-- delay_ms, since (server ms of the caller's last lease answer), max_depth (a request
-- handed out at that depth is a cut: its links are not followed), then per fetch of this
-- owner that has ended: digest, token, origin, latency ms (-1: it never ran), failed (0/1).
-- Their host slots are freed first (the leases stay until their records are committed),
-- and with autothrottle their latencies adapt the host's shared limit (even when the lease
-- has ended meanwhile: a retried request is released before this call). Returns
-- {{token1, entry1, memo1 ("": none), ...}, counters, ms until a host is ready (-1: none), ms until the next
-- lease expires (-1: none), now, {origin, ms its pause still lasts, ...} for pauses set
-- since `since`, 1 once any request was handed out at max_depth}.
redis.register_function('ts_lease', function(keys, args)
  local P = keys[1]
  local per_host, gate, owner = tonumber(args[1]), args[2], args[3]
  local max_n, lease_ms, delay_ms = tonumber(args[4]), tonumber(args[5]), tonumber(args[6])
  local since, max_depth = tonumber(args[7]), tonumber(args[8])
  local now = now_ms()
  local freed = {}
  local auto = string.sub(gate, 2, 2) == 'a'
  for i = 9, #args, 5 do
    local digest, token, origin = args[i], args[i + 1], args[i + 2]
    local value = redis.call('HGET', P .. 'lease', digest)
    if value and string.sub(value, 1, #token + 1) == token .. '\t' then
      local _, _, slot, entry = parse_lease(value)
      if slot == '1' then
        free_slot(P, origin, token)
        redis.call('HSET', P .. 'lease', digest, token .. '\t' .. origin .. '\t0\t' .. entry)
      end
    end
    local latency = tonumber(args[i + 3])
    if auto and latency >= 0 then
      adapt(P .. 'h:' .. origin, per_host, latency, args[i + 4] == '1')
    end
    if latency < 0 then
      -- Never sent (robots.txt refused it, the process stopped): when its lease was the
      -- last to set the host's next lease time, that delay is given back.
      local hk = P .. 'h:' .. origin
      local h = redis.call('HMGET', hk, 'nt', 'pn')
      if h[1] == token then
        redis.call('HSET', hk, 'next', h[2] or 0)
        redis.call('HDEL', hk, 'nt')
      end
    end
    freed[origin] = true
  end
  for origin in pairs(freed) do
    reschedule(P, origin, per_host, gate)
  end
  local paused = {}
  if since > 0 then
    redis.call('ZREMRANGEBYSCORE', P .. 'pz', '-inf', now - 600000)
    for _, origin in ipairs(redis.call('ZRANGEBYSCORE', P .. 'pz', '(' .. since, '+inf', 'LIMIT', 0, 1000)) do
      local left = (tonumber(redis.call('HGET', P .. 'h:' .. origin, 'pause')) or 0) - now
      if left > 0 then
        paused[#paused + 1] = origin
        paused[#paused + 1] = left
      end
    end
  end
  reap(P, now, per_host, gate)
  redis.call('ZADD', P .. 'procs', now, owner)
  local meta_now = redis.call('HMGET', P .. 'meta', 'queued', 'leased')
  if (tonumber(meta_now[1]) or 0) == 0 and (tonumber(meta_now[2]) or 0) == 0 then
    queue_revisits(P, per_host, gate)
  end
  local out = {}
  local taken = 0
  local round = tonumber(redis.call('HGET', P .. 'meta', 'round')) or 1
  -- (twice as many hosts as wanted: some may be owed to other processes, see fair_take)
  local origins = redis.call('ZRANGEBYSCORE', P .. 'ready', '-inf', now, 'LIMIT', 0, 2 * max_n)
  local rivals, served = {}, 0
  if #origins > 0 then
    rivals = rivals_of(P, owner, now)
    served = tonumber(redis.call('ZSCORE', P .. 'served', owner)) or 0
  end
  local held_back = false
  for _, origin in ipairs(origins) do
    if taken >= max_n then
      break
    end
    local hk = P .. 'h:' .. origin
    local q = P .. 'q:' .. origin
    local n = tonumber(redis.call('HGET', hk, 'n')) or 0
    local limit = limit_of(hk, per_host, gate)
    local delay = math.max(delay_ms, tonumber(redis.call('HGET', hk, 'cdelay')) or 0)
    local allowed = fair_take(hk, owner, served, rivals, limit, n)
    if allowed < limit - n then
      held_back = true
    end
    local mine = 0
    while taken < max_n and mine < allowed do
      local entry = redis.call('LPOP', q)
      if not entry then
        break
      end
      local digest = string.sub(entry, 1, string.find(entry, '\t', 1, true) - 1)
      local depth
      entry, depth = hand_out(P, digest, entry)
      if depth >= max_depth then
        redis.call('HSET', P .. 'meta', 'cut', 1)
      end
      local token = owner .. ':' .. redis.call('HINCRBY', P .. 'meta', 'tokens', 1)
      redis.call('HSET', P .. 'lease', digest, token .. '\t' .. origin .. '\t1\t' .. entry)
      redis.call('ZADD', P .. 'exp', now + lease_ms, digest)
      n = n + 1
      mine = mine + 1
      taken = taken + 1
      out[#out + 1] = token
      out[#out + 1] = entry
      out[#out + 1] = round > 1 and memo_of(P, digest, round) or ''
      if delay > 0 then
        local before = redis.call('HGET', hk, 'next') or 0
        redis.call('HSET', hk, 'next', now + delay, 'nt', token, 'pn', before)
        break
      end
    end
    if mine > 0 then
      redis.call('HSET', hk, 'n', n)
      redis.call('HINCRBY', hk, 'o:' .. owner, mine)
    end
    reschedule(P, origin, per_host, gate)
  end
  if taken > 0 then
    redis.call('HINCRBY', P .. 'meta', 'queued', -taken)
    redis.call('HINCRBY', P .. 'meta', 'leased', taken)
    redis.call('ZADD', P .. 'served', now, owner)
    redis.call('ZREMRANGEBYSCORE', P .. 'served', '-inf', now - 600000)
  end
  -- In line for slots while it got fewer than it asked for and work is queued.
  if taken < max_n and (tonumber(redis.call('HGET', P .. 'meta', 'queued')) or 0) > 0 then
    redis.call('ZADD', P .. 'wait', now, owner)
  else
    redis.call('ZREM', P .. 'wait', owner)
  end
  local wait, expires = -1, -1
  local first = redis.call('ZRANGE', P .. 'ready', 0, 0, 'WITHSCORES')
  if first[2] and not (held_back and tonumber(first[2]) <= now) then
    -- (a ready host whose slots are owed to others is no reason to ask again at once)
    wait = math.max(0, tonumber(first[2]) - now)
  end
  local lease = redis.call('ZRANGE', P .. 'exp', 0, 0, 'WITHSCORES')
  if lease[2] then
    expires = math.max(0, tonumber(lease[2]) - now)
  end
  local cut = redis.call('HGET', P .. 'meta', 'cut') or 0
  return { out, counters(P), wait, expires, now, paused, cut }
end)

-- Extend this owner's leases. ARGV: owner, lease_ms, then digest, token pairs.
-- Returns how many were still held.
redis.register_function('ts_renew', function(keys, args)
  local P = keys[1]
  local owner, lease_ms = args[1], tonumber(args[2])
  local now = now_ms()
  redis.call('ZADD', P .. 'procs', now, owner)
  local renewed = 0
  for i = 3, #args, 2 do
    local value = redis.call('HGET', P .. 'lease', args[i])
    local token = args[i + 1]
    if value and string.sub(value, 1, #token + 1) == token .. '\t' then
      redis.call('ZADD', P .. 'exp', 'XX', now + lease_ms, args[i])
      renewed = renewed + 1
    end
  end
  return renewed
end)

-- Complete leases, each with its record, refused for a stale or foreign token.
-- ARGV: per_host, gate, max_pages (0: none), writer, writer state ("" to keep), then per
-- request: digest, token, failed (0/1), record ("": none), memo ("": none; stored for the
-- next round), the record's data.change ("": none), the page's items (a JSON list; "":
-- none), its links (see admit_links; "": none), added as ts_add adds them, even when the
-- completion is refused (whoever does the page again finds the same links). Returns
-- {{stream id or "" if refused, ...}, counters, links added, 1 if max_pages refused one,
-- ms until a host is ready (-1: none; a lease call before then would find nothing)}.
redis.register_function('ts_done', function(keys, args)
  local P = keys[1]
  local per_host, gate, max_pages = tonumber(args[1]), args[2], tonumber(args[3])
  local writer, wstate = args[4], args[5]
  local meta = P .. 'meta'
  local out = {}
  local touched = {}
  local a
  for i = 6, #args, 8 do
    local digest, token, failed, record = args[i], args[i + 1], args[i + 2], args[i + 3]
    local memo, change, items, links = args[i + 4], args[i + 5], args[i + 6], args[i + 7]
    local value = redis.call('HGET', P .. 'lease', digest)
    if value and string.sub(value, 1, #token + 1) == token .. '\t' then
      local origin = end_lease(P, digest, value)
      touched[origin] = true
      redis.call('HINCRBY', meta, 'done', 1)
      if failed == '1' then
        redis.call('HINCRBY', meta, 'errors', 1)
      end
      if memo ~= '' then
        remember(P, digest, memo)
      end
      if change ~= '' then
        redis.call('HINCRBY', meta, 'c:' .. change, 1)
      end
      if record ~= '' and items ~= '' then
        out[#out + 1] = redis.call('XADD', P .. 'rec', '*', 'w', writer, 'r', record, 'i', items)
      elseif record ~= '' then
        out[#out + 1] = redis.call('XADD', P .. 'rec', '*', 'w', writer, 'r', record)
      else
        out[#out + 1] = '0-0'
      end
    else
      redis.call('HINCRBY', meta, 'refused', 1)
      out[#out + 1] = ''
    end
    if links ~= '' then
      a = a or adding(P, max_pages)
      admit_links(P, a, links)
    end
  end
  local total, limited = 0, 0
  if a then
    added(P, a, per_host, gate)
    total, limited = a.total, a.limited
  end
  if writer ~= '' and wstate ~= '' then
    redis.call('HSET', P .. 'w', writer, wstate)
  end
  for origin in pairs(touched) do
    reschedule(P, origin, per_host, gate)
  end
  local wait = -1
  local first = redis.call('ZRANGE', P .. 'ready', 0, 0, 'WITHSCORES')
  if first[2] then
    wait = math.max(0, tonumber(first[2]) - now_ms())
  end
  return { out, counters(P), total, limited, wait }
end)

-- Give leases back (unstarted, or to retry), to the front of their host's queue, in order.
-- ARGV: per_host, gate, then per request: digest, token, entry (attempts updated; "": as
-- leased), pause_ms.
-- A stale or foreign token is ignored (the lease was reaped: the URL is queued already).
redis.register_function('ts_release', function(keys, args)
  local P = keys[1]
  local per_host, gate = tonumber(args[1]), args[2]
  local now = now_ms()
  local touched = {}
  local count = (#args - 2) / 4
  for k = count, 1, -1 do
    local i = 3 + (k - 1) * 4
    local digest, token, entry, pause = args[i], args[i + 1], args[i + 2], tonumber(args[i + 3])
    local value = redis.call('HGET', P .. 'lease', digest)
    if value and string.sub(value, 1, #token + 1) == token .. '\t' then
      local origin, held = end_lease(P, digest, value)
      if entry == '' then
        entry = held -- given back as it was leased
      end
      redis.call('LPUSH', P .. 'q:' .. origin, entry)
      redis.call('HINCRBY', P .. 'meta', 'queued', 1)
      if pause > 0 then
        pause_host(P, origin, now, pause)
      end
      touched[origin] = true
    end
  end
  for origin in pairs(touched) do
    reschedule(P, origin, per_host, gate)
  end
  return counters(P)
end)

-- A host's politeness changed. ARGV: per_host, gate, origin, robots (1: robots.txt is known,
-- "": unchanged), crawl-delay ms ("": unchanged), pause ms (0: none).
redis.register_function('ts_host', function(keys, args)
  local P = keys[1]
  local per_host, gate, origin = tonumber(args[1]), args[2], args[3]
  local hk = P .. 'h:' .. origin
  if args[4] ~= '' then
    redis.call('HSET', hk, 'robots', args[4])
  end
  if args[5] ~= '' then
    local cdelay = tonumber(args[5])
    redis.call('HSET', hk, 'cdelay', cdelay)
  end
  local pause = tonumber(args[6])
  if pause > 0 then
    pause_host(P, origin, now_ms(), pause)
  end
  reschedule(P, origin, per_host, gate)
  return 1
end)

-- A request to this origin is about to be sent: it may start if the host is not paused and
-- the previous start's delay has passed (whichever process made it). Then the next start
-- may come no sooner than max(delay_ms, Crawl-delay) * factor from now (factor: the jitter
-- the caller drew, one draw per start, so the fleet's starts are spaced exactly as one
-- process's would be). ARGV: per_host, gate, delay_ms, factor, origin.
-- Returns 0 (start now) or the ms to wait before asking again.
redis.register_function('ts_start', function(keys, args)
  local P = keys[1]
  local per_host, gate, delay_ms, factor = tonumber(args[1]), args[2], tonumber(args[3]), tonumber(args[4])
  local origin = args[5]
  local hk = P .. 'h:' .. origin
  local now = now_ms()
  local h = redis.call('HMGET', hk, 'start', 'pause', 'cdelay', 'next')
  local at = math.max(tonumber(h[1]) or 0, tonumber(h[2]) or 0)
  if at > now then
    return at - now
  end
  local delay = math.max(delay_ms, tonumber(h[3]) or 0) * factor
  if delay > 0 then
    local start = math.floor(now + delay)
    redis.call('HSET', hk, 'start', start)
    if start > (tonumber(h[4]) or 0) then
      redis.call('HSET', hk, 'next', start)
      redis.call('HDEL', hk, 'nt')  -- set by a start now: no lease gives it back
      if redis.call('ZSCORE', P .. 'ready', origin) then
        reschedule(P, origin, per_host, gate)
      end
    end
  end
  return 0
end)

-- Start the next round of a finished crawl (--recrawl). ARGV: the round the caller found
-- finished. If that round is still the current one and it has finished, everything of it
-- goes (queue, seen-set, leases, records, output files' lengths, robots.txt texts, pauses)
-- but the pages' memos and the settings; the seeds are added again by the callers. Returns
-- {the current round, pages known from earlier rounds, started (1: by this call)}.
redis.register_function('ts_round', function(keys, args)
  local P = keys[1]
  local meta = P .. 'meta'
  local round = tonumber(redis.call('HGET', meta, 'round')) or 1
  -- Finished as FrontierOpened.finished says (frontier/base.py): something was scheduled,
  -- and nothing is queued, leased or waiting for a revisit.
  local c = redis.call('HMGET', meta, 'queued', 'leased', 'scheduled')
  local finished = (tonumber(c[1]) or 0) == 0 and (tonumber(c[2]) or 0) == 0
    and (tonumber(c[3]) or 0) > 0 and redis.call('ZCARD', P .. 'rvd') == 0
  if round ~= tonumber(args[1]) or not finished then
    return { round, tonumber(redis.call('HGET', meta, 'known')) or 0, 0 }
  end
  local batch = {}
  for bucket = 0, 65535 do
    batch[#batch + 1] = P .. 's:' .. string.format('%04x', bucket)
    if #batch == 1024 then
      redis.call('UNLINK', unpack(batch))
      batch = {}
    end
  end
  for _, name in ipairs({ 'better', 'rv', 'rvd', 'ready', 'lease', 'exp', 'rec', 'w', 'robots',
                          'pz', 'prev', 'wait', 'served' }) do
    redis.call('UNLINK', P .. name)
  end
  local fields = { 'queued', 'leased', 'seen', 'done', 'errors', 'scheduled', 'refused', 'reaped',
                   'reached', 'cut', 'limited', 'c:new', 'c:changed', 'c:unchanged', 'c:gone' }
  for _, field in ipairs(fields) do
    redis.call('HSET', meta, field, 0)
  end
  local known = redis.call('HLEN', P .. 'pages')
  redis.call('HSET', meta, 'round', round + 1, 'known', known)
  return { round + 1, known, 1 }
end)

-- The round's counts: {round, pages known from earlier rounds, of which reached in this
-- round, records by change: new, changed, unchanged, gone}.
redis.register_function {
  function_name = 'ts_round_counts',
  flags = { 'no-writes' },
  callback = function(keys, args)
    local P = keys[1]
    local v = redis.call('HMGET', P .. 'meta', 'round', 'known', 'reached', 'c:new', 'c:changed',
                         'c:unchanged', 'c:gone')
    local out = { tonumber(v[1]) or 1 }
    for i = 2, #v do
      out[i] = tonumber(v[i]) or 0
    end
    return out
  end,
}

-- A process takes, or keeps, the lock on its output file for the crawl (its renewal is this
-- call too). ARGV: writer, owner, lease ms. 1: this owner holds it for the lease from now;
-- 0: another live owner holds it (it is never taken from one).
redis.register_function('ts_writer_lock', function(keys, args)
  local key = keys[1] .. 'wl:' .. args[1]
  local holder = redis.call('GET', key)
  if holder == args[2] then
    redis.call('PEXPIRE', key, args[3])
    return 1
  end
  if holder then
    return 0
  end
  redis.call('SET', key, args[2], 'PX', args[3])
  return 1
end)

-- A process stops writing its output file. ARGV: writer, owner, writer state ("" to keep):
-- the state is stored and the file's lock dropped if this owner holds it.
redis.register_function('ts_writer_done', function(keys, args)
  local P = keys[1]
  local writer, owner, wstate = args[1], args[2], args[3]
  if wstate ~= '' then
    redis.call('HSET', P .. 'w', writer, wstate)
  end
  if redis.call('GET', P .. 'wl:' .. writer) == owner then
    redis.call('DEL', P .. 'wl:' .. writer)
  end
  return 1
end)

-- interp_mix.lua: an allocation-heavy, deterministic Lua 5.4 script, recorded as real:lua
-- (harness/real_programs.py) with alloclab's LD_PRELOAD recorder.
--
-- Stands for: an interpreter's heap under a scripting workload, the pattern mimalloc-bench's
-- lua benchmark exercises. Lua allocates every string, table, closure and upvalue through one
-- realloc-style function (lauxlib's l_alloc: realloc to grow, free to drop), and its incremental
-- collector frees unreachable objects in batches, at the program's own free() calls:
--   * records: a table per record with short string fields, kept in an index that a few
--     records leave and join (long-lived objects beside short-lived ones);
--   * string building: a line per record from string.format and .., collected in a buffer
--     table and joined with table.concat every 64 lines (many short strings, one long one);
--   * tables grown by insertion: array and hash parts reallocated each time they double;
--   * closures: a map/filter pipeline of closures over upvalues, made per batch;
--   * word counting: text split with gmatch into a hash table of counts (interned short
--     strings, a hash part that keeps growing).
-- Deterministic: a fixed seed (Lua 5.4's xoshiro256**), no clock, one summary line of output.
-- Argument: rounds (default 4); each round is ROUND_RECORDS records.

local rounds = tonumber(arg and arg[1]) or 4
local ROUND_RECORDS = 6000
local INDEX_CAP = 4000
math.randomseed(42)

local WORDS = { "alloc", "free", "span", "page", "heap", "class", "cache", "sweep", "mark",
                "arena", "chunk", "bin", "slab", "tiny", "large", "stack" }

-- a word per number, "b".."zz..": about VOCABULARY distinct words in the text
local VOCABULARY = 5000
local function letters(n)
  local t = {}
  repeat
    t[#t + 1] = string.char(97 + n % 26)
    n = n // 26
  until n == 0
  return table.concat(t)
end

local function make_record(i)
  local w = WORDS[math.random(#WORDS)]
  return { id = i, name = w .. "-" .. letters(math.random(VOCABULARY)), tags = { w, WORDS[(i % #WORDS) + 1] },
           score = math.random() * 100, note = string.rep("x", math.random(0, 40)) }
end

-- a pipeline of closures: each stage captures its parameters as upvalues
local function pipeline(threshold, scale)
  local keep = function(r) return r.score >= threshold end
  local map = function(r) return { id = r.id, v = r.score * scale, label = r.name:upper() } end
  return function(batch)
    local out = {}
    for _, r in ipairs(batch) do
      if keep(r) then out[#out + 1] = map(r) end
    end
    return out
  end
end

local index, index_n, checksum, words_total = {}, 0, 0, 0
local counts = {}
for round = 1, rounds do
  local buf, lines, batch = {}, 0, {}
  for i = 1, ROUND_RECORDS do
    local id = (round - 1) * ROUND_RECORDS + i
    local r = make_record(id)
    batch[#batch + 1] = r
    -- the index keeps some records for a long time; a full index drops a random one
    if math.random() < 0.3 then
      if index_n >= INDEX_CAP then
        local victim = math.random(INDEX_CAP)
        index[victim] = r
      else
        index_n = index_n + 1
        index[index_n] = r
      end
    end
    buf[#buf + 1] = string.format("%6d %-12s %8.3f %s", r.id, r.name, r.score, table.concat(r.tags, ","))
    lines = lines + 1
    if lines == 64 then
      local text = table.concat(buf, "\n")
      for word in text:gmatch("%a+") do
        counts[word] = (counts[word] or 0) + 1
        words_total = words_total + 1
      end
      checksum = (checksum + #text) % 1000000007
      buf, lines = {}, 0
    end
    if #batch == 256 then
      local f = pipeline(math.random() * 50, 1 + round / 10)
      for _, m in ipairs(f(batch)) do checksum = (checksum + #m.label + math.floor(m.v)) % 1000000007 end
      batch = {}
    end
  end
end

local distinct = 0
for _ in pairs(counts) do distinct = distinct + 1 end
print(string.format("rounds=%d index=%d words=%d distinct=%d checksum=%d", rounds, index_n, words_total,
                    distinct, checksum))

"""
Where a group-by by ratio spends its time on the server: the steps of the top-20 query
over 10,000 children x 30 days (the same data as query_groupby.py), timed inside one Lua
script with os.clock on a Valkey server without persistence.

    .venv/bin/python bench/group_profile.py
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import query_groupby

from hailwhale import testing
from hailwhale.model import keys
from hailwhale.query import periods
from hailwhale.store import Store

STEPS = """
local function ms() return os.clock() * 1000 end
local pieces = #KEYS / 3
local function union(first)
  local args = {'ZUNION', pieces}
  for q = 0, pieces - 1 do args[#args + 1] = KEYS[first + q] end
  args[#args + 1] = 'WITHSCORES'
  return redis.call(unpack(args))
end
local out = {}
local t = ms()
local above = union(pieces + 1)
out[#out + 1] = 'ZUNION of the numerator into Lua: ' .. string.format('%.1f', ms() - t) .. ' ms'
t = ms()
local totals = {}
for i = 1, #above, 2 do totals[above[i]] = tonumber(above[i + 1]) end
out[#out + 1] = 'numerator into a Lua table: ' .. string.format('%.1f', ms() - t) .. ' ms'
t = ms()
local below = union(2 * pieces + 1)
out[#out + 1] = 'ZUNION of the denominator into Lua: ' .. string.format('%.1f', ms() - t) .. ' ms'
t = ms()
local best = 0
for i = 1, #below, 2 do
  local d = tonumber(below[i + 1])
  if d ~= 0 then
    local r = (totals[below[i]] or 0) / d
    if r > best then best = r end
  end
end
out[#out + 1] = 'divide and keep the best: ' .. string.format('%.1f', ms() - t) .. ' ms'
t = ms()
union(1)
out[#out + 1] = 'ZUNION of hits (presence): ' .. string.format('%.1f', ms() - t) .. ' ms'
return out
"""


def main() -> None:
    server = testing.start_valkey(config={"save": "", "appendonly": "no"})
    store = Store.connect(testing.valkey_url(server))
    now = time.time()
    query_groupby.load(
        store,
        "big",
        10_000,
        {"revenue": lambda i, d: (i * 7919 % 10_000) / 100 + d, "visitors": lambda i, d: 1 + i % 13},
        now,
        2,
    )
    window = periods.resolve("thirty", now)
    pieces = periods.pieces(window.start, window.end, query_groupby.SCHEMA, now)
    tag = keys.tag(("big",))
    data_keys = [
        keys.data_key(tag, p.size, p.start, metric, "country")
        for metric in ("hits", "revenue", "visitors")
        for p in pieces
    ]
    script = store._client.register_script(STEPS)
    print(f"thirty = {len(pieces)} pieces; each step's median of 20 runs:")
    runs = [[line.decode() for line in script(keys=data_keys)] for _ in range(21)][1:]
    for step in range(len(runs[0])):
        label = runs[0][step].rsplit(":", 1)[0]
        values = sorted(float(run[step].rsplit(":", 1)[1].split()[0]) for run in runs)
        print(f"  {label}: {values[len(values) // 2]:.1f} ms")
    server.stop()


if __name__ == "__main__":
    main()

"""
How long the dashboard takes to draw N series x D days, in a real browser.

Starts a daemon (its embedded store), counts one event per series per day for the last D
days (pk ``bench``, dimension ``item`` with N children, metric ``revenue``), then opens the
dashboard on that grouping (depth 1, top N) in headless Chromium and times, per page load:

- ``to chart``: from the start of navigation to the chart drawn (the widget's ``drawn``
  event, then the next animation frame: the frame that shows it);
- ``plotpoints``: the /plotpoints request as the browser timed it (Resource Timing);
- ``draw``: the widget's work on the answer (series, plan, uPlot built and drawn);
- ``update``: a refresh with new data in place (``setData``), the next frame included.

    .venv/bin/python bench/graph_draw.py [--series 200] [--days 30] [--runs 7] [--screenshot out.png]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hailwhale.testing.browser import Browser
from hailwhale.testing.processes import Daemon

MEASURE = """
const done = arguments[arguments.length - 1];
const element = document.getElementById('hw-chart');
function frame() { return new Promise(resolve => requestAnimationFrame(() => resolve(performance.now()))); }
function drawnOnce() {
  return new Promise(resolve => {
    if (element.getAttribute('data-hw-state') === 'drawn' && element.hailwhale && element.hailwhale.chart) {
      resolve(performance.now());
      return;
    }
    element.addEventListener('hailwhale:drawn', () => resolve(performance.now()), {once: true});
  });
}
(async () => {
  await drawnOnce();
  const shown = await frame();
  const graph = element.hailwhale;
  const request = performance.getEntriesByType('resource').filter(e => e.name.includes('/plotpoints?')).pop();
  const drawMs = graph.drawMs;
  const before = graph.updates;
  const started = performance.now();
  graph.loading = false;
  graph.refresh();
  await new Promise(resolve => element.addEventListener('hailwhale:drawn', resolve, {once: true}));
  const updated = await frame();
  done({toChart: shown, plotpoints: request ? request.duration : null, draw: drawMs,
        update: updated - started, updateDraw: graph.drawMs, inPlace: graph.updates === before + 1,
        series: graph.plan.series.length, points: graph.chart.data[0].length});
})();
"""


def count(base: str, series: int, days: int) -> None:
    now = time.time()
    events = [
        {
            "pk": "bench",
            "dimensions": {"item": f"item{i:03d}"},
            "metrics": {"revenue": 1 + (i * 7 + d) % 13},
            "at": now - d * 86400,
        }
        for d in range(days)
        for i in range(series)
    ]
    for start in range(0, len(events), 2000):
        request = urllib.request.Request(
            base + "/count_now",
            data=json.dumps(events[start : start + 2000]).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=120).read()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--screenshot", help="save the last page load here (PNG)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="hailwhale-bench-"))
    daemon = Daemon(directory, "--collectd-port", "0")
    browser = Browser(1400, 1000)
    try:
        count(daemon.base, args.series, args.days)
        period = "thirty" if args.days == 30 else f"1d:{args.days}d"
        query = {"pk": "bench", "dimension": "item", "metrics": '["revenue"]', "period": period, "limit": args.series}
        url = f"{daemon.base}/?{urlencode(query)}"
        browser.driver.set_script_timeout(120)
        runs = []
        for _ in range(args.runs + 1):
            browser.get(url)
            runs.append(browser.driver.execute_async_script(MEASURE))
        if args.screenshot:
            browser.screenshot(Path(args.screenshot))
        warm = runs[1:]  # the first load fills the browser's cache of the static files
        print(f"{warm[0]['series']} series x {warm[0]['points']} points, {len(warm)} page loads (median, min-max):")
        for name, label in (
            ("toChart", "to chart"),
            ("plotpoints", "plotpoints"),
            ("draw", "draw"),
            ("update", "update"),
            ("updateDraw", "update draw"),
        ):
            values = [run[name] for run in warm]
            print(f"  {label:12s} {statistics.median(values):7.1f} ms   ({min(values):.1f}-{max(values):.1f})")
        print(f"  updates in place: {all(run['inPlace'] for run in warm)}")
    finally:
        browser.quit()
        daemon.stop()


if __name__ == "__main__":
    main()

// The widget's pure logic (hailwhale/web/static/hw-core.js), run by `node --test` from tests/test_js.py.
"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");

const Core = require(path.join(__dirname, "..", "..", "hailwhale", "web", "static", "hw-core.js"));

const T0 = 1796256000000; // a day start, in ms

const grouped = {
  rows: [
    { dimension: "country", path: ["country"], metrics: { revenue: [[T0, 10], [T0 + 86400000, 20]] } },
    { dimension: '["country", "US"]', path: ["country", "US"], metrics: { revenue: [[T0, 6], [T0 + 86400000, 15]] } },
    { dimension: '["country", "UK"]', path: ["country", "UK"], metrics: { revenue: [[T0, 4], [T0 + 86400000, 5]] } }
  ],
  more: 3
};

test("a grouped answer becomes one series per row, the root first, in the answer's order", () => {
  const built = Core.seriesFromAnswer(grouped);

  assert.deepEqual(
    {
      times: built.times,
      labels: built.series.map((s) => s.label),
      roots: built.series.map((s) => s.root),
      depths: built.series.map((s) => s.depth),
      values: built.series.map((s) => s.values),
      more: built.more
    },
    {
      times: [T0 / 1000, T0 / 1000 + 86400],
      labels: ["country (all)", "US", "UK"],
      roots: [true, false, false],
      depths: [0, 1, 1],
      values: [[10, 20], [6, 15], [4, 5]],
      more: 3
    }
  );
});

test("a plain answer (no depth) puts the shortest path first and labels the root Overall", () => {
  const built = Core.seriesFromAnswer({ _: { hits: [[T0, 1]], "hits/2": [[T0, 0.5]] } });

  assert.deepEqual(
    built.series.map((s) => [s.label, s.metric, s.values]),
    [["Overall · hits", "hits", [1]], ["Overall · hits/2", "hits/2", [0.5]]]
  );
});

test("an empty answer gives no series and counts as empty", () => {
  const built = Core.seriesFromAnswer({ rows: [], more: 0 });

  assert.deepEqual([built.series, Core.isEmpty(built)], [[], true]);
});

test("a series of zeros is empty, one non-zero point is not", () => {
  const zeros = Core.seriesFromAnswer({ _: { hits: [[T0, 0], [T0 + 1, 0]] } });
  const one = Core.seriesFromAnswer({ _: { hits: [[T0, 0], [T0 + 1, 2]] } });

  assert.deepEqual([Core.isEmpty(zeros), Core.isEmpty(one)], [true, false]);
});

test("the same rows in the same order are the same series, over any points; another row or order is not", () => {
  const a = Core.seriesFromAnswer(grouped);
  const b = Core.seriesFromAnswer(JSON.parse(JSON.stringify(grouped)));
  const fewer = Core.seriesFromAnswer({ rows: grouped.rows.slice(0, 2), more: 0 });
  const later = Core.seriesFromAnswer({
    rows: grouped.rows.map((row) => ({ ...row, metrics: { revenue: row.metrics.revenue.map(([t, v]) => [t + 86400000, v]) } }))
  });

  const reordered = Core.seriesFromAnswer({ rows: [grouped.rows[0], grouped.rows[2], grouped.rows[1]] });

  assert.deepEqual(
    [Core.sameSeries(a, b), Core.sameSeries(a, later), Core.sameSeries(a, fewer), Core.sameSeries(a, reordered)],
    [true, true, false, false]
  );
});

test("stacking adds each array to the ones before it, point by point", () => {
  assert.deepEqual(Core.stack([[1, 2], [3, 4], [0, 1]]), [[1, 2], [4, 6], [4, 7]]);
});

test("percentages are of the total at each point, 0 where the total is 0", () => {
  assert.deepEqual(Core.percentOf([[1, 0], [3, 0]], [4, 0]), [[25, 0], [75, 0]]);
});

test("the root's line is thick and each level below thinner", () => {
  assert.deepEqual([0, 1, 2].map((depth) => Core.lineWidth(depth, 3)), [3, 2, 1.2]);
});

test("a stacked plan stacks the children, keeps the root a line and the raw values for the legend", () => {
  const plan = Core.plan(Core.seriesFromAnswer(grouped), { area: true });

  assert.deepEqual(
    {
      values: plan.series.map((s) => s.values),
      raw: plan.series.map((s) => s.raw),
      fill: plan.series.map((s) => s.fill),
      on: plan.series.map((s) => s.stackedOn),
      colors: plan.series.map((s) => s.color)
    },
    {
      values: [[10, 20], [6, 15], [10, 20]],
      raw: [[10, 20], [6, 15], [4, 5]],
      fill: [false, true, true],
      on: [null, null, '["country", "US"]\u0000revenue'],
      colors: ["#000000", Core.PALETTE[1], Core.PALETTE[2]]
    }
  );
});

test("a percent plan leaves the root out and stacks the children's shares of it", () => {
  const plan = Core.plan(Core.seriesFromAnswer(grouped), { area: "percent" });

  assert.deepEqual(plan.series.map((s) => s.values), [[60, 75], [100, 100]]);
});

test("a lines plan draws every series as it is", () => {
  const plan = Core.plan(Core.seriesFromAnswer(grouped), {});

  assert.deepEqual([plan.stacked, plan.series.map((s) => s.values)], [false, [[10, 20], [6, 15], [4, 5]]]);
});

test("a root many times larger than every child gets a scale of its own; a comparable one shares the children's", () => {
  const many = {
    rows: [
      { dimension: "item", path: ["item"], metrics: { x: [[T0, 1000]] } },
      { dimension: '["item", "a"]', path: ["item", "a"], metrics: { x: [[T0, 10]] } },
      { dimension: '["item", "b"]', path: ["item", "b"], metrics: { x: [[T0, 12]] } }
    ]
  };

  const apart = Core.plan(Core.seriesFromAnswer(many), {});
  const together = Core.plan(Core.seriesFromAnswer(grouped), {});
  const stackedApart = Core.plan(Core.seriesFromAnswer(many), { area: true });

  assert.deepEqual(
    [apart.rootApart, apart.series.map((s) => s.axis), together.rootApart, stackedApart.rootApart],
    [true, [2, 0, 0], false, false]
  );
});

test("only the root is black: children go round the rest of the palette", () => {
  const n = Core.PALETTE.length;

  assert.deepEqual(
    [Core.colorFor(0), Core.colorFor(1), Core.colorFor(n - 1), Core.colorFor(n), Core.colorFor(3, ["#111", "#222"])],
    [Core.PALETTE[0], Core.PALETTE[1], Core.PALETTE[n - 1], Core.PALETTE[1], "#222"]
  );
});

test("values for tables: whole numbers grouped, fractions to three significant places", () => {
  assert.deepEqual(
    [1234567, 0, -4200, 2.5, 0.12345, 123.45, -1234.56, 0.0001, null].map(Core.formatValue),
    ["1,234,567", "0", "-4,200", "2.50", "0.123", "123.5", "-1,234.6", "1.00e-4", "–"]
  );
});

test("short values for axes", () => {
  assert.deepEqual(
    [950, 1200, 15000, 250000, 3400000, 5e9, 0.25, 12.5].map(Core.formatShort),
    ["950", "1.2k", "15k", "250k", "3.4M", "5B", "0.25", "12.5"]
  );
});

test("percentages and durations for people", () => {
  assert.deepEqual(
    [Core.formatPercent(0.952), Core.formatPercent(-0.035), Core.formatDuration(42), Core.formatDuration(7200)],
    ["+95%", "-3.5%", "42 s", "2 h"]
  );
});

test("the original's options (strings, aliases) become the widget's", () => {
  const options = Core.normalizeOptions({
    category: '["Product", "5"]',
    dimension: "country",
    metric: "dollars",
    metric_two: "hits",
    autoupdate: "false",
    interval: "3500",
    area: "true",
    width_factor: "6"
  });

  assert.deepEqual(
    [options.pk, options.dimensions, options.metrics, options.live, options.interval, options.area, options.depth, options.widthFactor],
    [["Product", "5"], "country", ["dollars", "hits"], false, 3500, true, 1, 6]
  );
});

test("the /plotpoints query names every option it was given, lists as JSON, and never a token", () => {
  const query = Core.plotpointsQuery(Core.normalizeOptions({
    pk: ["shop", "web"], metrics: ["revenue/visitors"], depth: 1, period: "seven", token: "secret", grant: "hwg1.a.b"
  }));

  assert.deepEqual(
    Object.fromEntries(new URLSearchParams(query)),
    { pk: '["shop","web"]', metrics: '["revenue/visitors"]', depth: "1", period: "seven", limit: "10", grant: "hwg1.a.b" }
  );
});

test("hhmm offsets in seconds", () => {
  assert.deepEqual(["-0700", "+0530", "-5", "x"].map(Core.offsetSeconds), [-25200, 19800, -18000, null]);
});

test("the dashboard's state survives its URL", () => {
  const state = {
    pk: ["shop", "web"], dimension: "country", metrics: ["revenue", "revenue/visitors"], chart: "revenue/visitors",
    period: "seven", depth: 2, sort: "-revenue/visitors", limit: 20, tz: "Europe/Tallinn", mode: "stacked"
  };

  assert.deepEqual(Core.stateFromQuery(Core.queryFromState(state)), state);
});

test("defaults stay out of the URL", () => {
  const state = Core.stateFromQuery("");
  state.pk = ["signup"];

  assert.equal(Core.queryFromState(state), "pk=signup");
});

test("a sort's direction and formula", () => {
  assert.deepEqual(
    [Core.parseSort("-revenue/visitors"), Core.parseSort("hits")],
    [{ formula: "revenue/visitors", descending: true }, { formula: "hits", descending: false }]
  );
});

test("ingest rates between two snapshots", () => {
  assert.deepEqual(
    [Core.rate({ events_accepted: 100 }, { events_accepted: 160 }, "events_accepted", 6), Core.rate(null, {}, "x", 1)],
    [10, null]
  );
});

/*
 * hailwhale's chart logic, pure (no DOM): series from /plotpoints answers, stacking,
 * number formats, widget options and the dashboard's URL state.  The widget
 * (hw-graph.js) and the dashboard (hw-dashboard.js) use it in the browser as
 * window.HailwhaleCore; tests/js/*.test.js run it under `node --test`.
 */
(function (root, factory) {
  "use strict";
  if (typeof module === "object" && module.exports) {
    module.exports = factory();
  } else {
    root.HailwhaleCore = factory();
  }
})(typeof self !== "undefined" ? self : this, function () {
  "use strict";

  // The original widget's palette (its overall line black), its pale yellow moved last,
  // then more colours that read on white.
  var PALETTE = [
    "#000000", "#98A942", "#4C1B33", "#D2A825", "#DE2B5B", "#2D6960",
    "#1F77B4", "#FF7F0E", "#9467BD", "#8C564B", "#E377C2", "#17BECF",
    "#7F7F7F", "#BCBD22", "#2CA02C", "#D62728", "#EFE672"
  ];
  var WIDTH_FACTOR = 3;
  var ROOT_APART = 4; // the root gets its own scale when it is more than this many times the largest child

  // -- paths and labels ------------------------------------------------------------------

  /** The path of a dimension encoding: "_" is [], "country" is ["country"], '["country", "US"]' its list. */
  function pathOf(encoding) {
    if (encoding === "_" || encoding === undefined || encoding === null) {
      return [];
    }
    if (encoding.charAt(0) === "[") {
      try {
        var value = JSON.parse(encoding);
        if (Array.isArray(value)) {
          return value.map(String);
        }
      } catch (ignored) {
        // a lone name that starts with [
      }
    }
    return [encoding];
  }

  /** How a series is named in legends and tables: "Overall" for the root "_", else its path below the graph's root. */
  function label(path, rootPath) {
    var below = path.slice(rootPath.length);
    if (below.length === 0) {
      return path.length === 0 ? "Overall" : path[path.length - 1] + " (all)";
    }
    return below.join(" › ");
  }

  // -- series ------------------------------------------------------------------------------

  /**
   * Series from a /plotpoints answer, grouped ({rows: [...], more}) or plain
   * ({dimension: {metric: [[ms, value], ...]}}): {times: [epoch seconds], series: [{key,
   * dimension, path, metric, depth, root, label, values}], more}.  Series come metric by
   * metric, the root first, then the rows in the answer's order (the sort's).
   */
  function seriesFromAnswer(answer) {
    var rows;
    if (answer && Array.isArray(answer.rows)) {
      rows = answer.rows.map(function (row) {
        return { dimension: row.dimension, path: row.path.map(String), metrics: row.metrics };
      });
    } else {
      rows = Object.keys(answer || {}).map(function (dimension) {
        return { dimension: dimension, path: pathOf(dimension), metrics: answer[dimension] };
      });
      rows.sort(function (a, b) {
        return a.path.length - b.path.length;
      });
    }
    var result = { times: [], series: [], more: (answer && answer.more) || 0 };
    if (rows.length === 0) {
      return result;
    }
    var rootPath = rows[0].path;
    var metrics = Object.keys(rows[0].metrics);
    var first = rows[0].metrics[metrics[0]] || [];
    result.times = first.map(function (point) {
      return point[0] / 1000;
    });
    metrics.forEach(function (metric) {
      rows.forEach(function (row, index) {
        var points = row.metrics[metric] || [];
        result.series.push({
          key: row.dimension + "\u0000" + metric,
          dimension: row.dimension,
          path: row.path,
          metric: metric,
          depth: row.path.length - rootPath.length,
          root: index === 0,
          label: label(row.path, rootPath) + (metrics.length > 1 ? " · " + metric : ""),
          values: points.map(function (point) {
            return point[1];
          })
        });
      });
    });
    return result;
  }

  /** Whether two series lists draw the same lines, in the same order (then a chart takes new data in place). */
  function sameSeries(a, b) {
    if (!a || !b || a.series.length !== b.series.length) {
      return false;
    }
    for (var i = 0; i < a.series.length; i++) {
      if (a.series[i].key !== b.series[i].key) {
        return false;
      }
    }
    return true;
  }

  /** Whether a built series list has nothing to show: no points, or only zeros. */
  function isEmpty(built) {
    return built.series.every(function (s) {
      return s.values.every(function (v) {
        return !v;
      });
    });
  }

  /** Running sums: the i-th array is the sum of arrays 0..i, point by point. */
  function stack(arrays) {
    var sums = [];
    arrays.forEach(function (values, i) {
      sums.push(values.map(function (v, j) {
        return (i === 0 ? 0 : sums[i - 1][j]) + (v || 0);
      }));
    });
    return sums;
  }

  /** Each array as a percentage of ``totals`` point by point (0 where the total is 0). */
  function percentOf(arrays, totals) {
    return arrays.map(function (values) {
      return values.map(function (v, j) {
        return totals[j] ? (100 * (v || 0)) / totals[j] : 0;
      });
    });
  }

  /** The width of a series' line: the root thick, each level below thinner (the original's width_factor rule). */
  function lineWidth(depth, widthFactor) {
    var factor = widthFactor || WIDTH_FACTOR;
    return depth === 0 ? factor : factor / (0.5 + depth);
  }

  /**
   * A series' colour by position: the given colours in turn, or the palette's, whose black
   * (position 0) is the root's alone: children go round the other colours.
   */
  function colorFor(index, colors) {
    if (colors && colors.length) {
      return colors[index % colors.length];
    }
    return index === 0 ? PALETTE[0] : PALETTE[1 + ((index - 1) % (PALETTE.length - 1))];
  }

  /**
   * What a chart draws: uPlot's data arrays and per-series drawing hints, from built
   * series and the options' mode (area: true, "percent"; stacked).  Stacked and percent
   * modes stack the children; the root stays a line (percent leaves it out: it is 100%).
   */
  function plan(built, options) {
    var area = options.area === true || options.area === "percent";
    var percent = options.area === "percent";
    var stacked = percent || (options.stacked === undefined ? options.area === true : !!options.stacked);
    var firstMetric = built.series.length ? built.series[0].metric : null;
    var drawn = built.series.filter(function (s) {
      return !(percent && s.root);
    });
    var children = drawn.filter(function (s) {
      return !s.root && s.metric === firstMetric;
    });
    var rootValues = null;
    built.series.forEach(function (s) {
      if (s.root && s.metric === firstMetric) {
        rootValues = s.values;
      }
    });
    var shown = {};
    drawn.forEach(function (s) {
      shown[s.key] = s.values;
    });
    if (stacked && children.length) {
      var raw = children.map(function (s) {
        return s.values;
      });
      var base = percent && rootValues ? percentOf(raw, rootValues) : raw;
      stack(base).forEach(function (values, i) {
        shown[children[i].key] = values;
      });
    }
    // A root many times larger than any child flattens the children: it gets a scale of its own.
    var rootApart = false;
    if (!stacked && rootValues && children.length) {
      var biggestChild = Math.max.apply(null, children.map(function (s) {
        return Math.max.apply(null, s.values.map(Math.abs).concat([0]));
      }));
      var biggestRoot = Math.max.apply(null, rootValues.map(Math.abs).concat([0]));
      rootApart = biggestChild > 0 && biggestRoot > ROOT_APART * biggestChild;
    }
    var colorIndex = 0;
    var series = drawn.map(function (s) {
      var color = s.root && !options.colors ? PALETTE[0] : colorFor(s.root ? 0 : ++colorIndex, options.colors);
      return {
        key: s.key,
        label: s.label,
        metric: s.metric,
        root: s.root,
        color: color,
        width: lineWidth(s.depth, options.widthFactor),
        fill: area && !s.root,
        stackedOn: null,
        raw: s.values,
        values: shown[s.key],
        axis: s.metric !== firstMetric ? 1 : s.root && rootApart ? 2 : 0
      };
    });
    if (stacked) {
      var previous = null;
      series.forEach(function (s) {
        if (!s.root && s.metric === firstMetric) {
          s.stackedOn = previous;
          previous = s.key;
        }
      });
    }
    return {
      times: built.times,
      series: series,
      percent: percent,
      stacked: stacked && children.length > 0,
      rootApart: rootApart
    };
  }

  // -- numbers -----------------------------------------------------------------------------

  var grouped = typeof Intl !== "undefined" ? new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 }) : null;

  function groupDigits(whole) {
    return grouped ? grouped.format(whole) : String(whole);
  }

  /** A value for tables and legends: whole numbers grouped (12,345), others to 3 significant decimals. */
  function formatValue(value) {
    if (value === null || value === undefined || isNaN(value)) {
      return "–";
    }
    if (value === Math.round(value) && Math.abs(value) < 1e15) {
      return groupDigits(value);
    }
    var size = Math.abs(value);
    var decimals = size >= 100 ? 1 : size >= 1 ? 2 : 3;
    if (size > 0 && size < 0.001) {
      return value.toExponential(2);
    }
    var fixed = value.toFixed(decimals);
    var parts = fixed.split(".");
    var whole = groupDigits(Number(parts[0]));
    if (parts[0].charAt(0) === "-" && whole.charAt(0) !== "-") {
      whole = "-" + whole;
    }
    return whole + "." + parts[1];
  }

  /** A short value for axis ticks: 950, 1.2k, 3.4M, 5B; small ratios keep their decimals. */
  function formatShort(value) {
    var size = Math.abs(value);
    var units = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "k"]];
    for (var i = 0; i < units.length; i++) {
      if (size >= units[i][0]) {
        var scaled = value / units[i][0];
        return (Math.abs(scaled) >= 100 ? scaled.toFixed(0) : String(Number(scaled.toFixed(1)))) + units[i][1];
      }
    }
    if (value === Math.round(value)) {
      return String(value);
    }
    return String(Number(value.toFixed(size >= 10 ? 1 : size >= 1 ? 2 : 3)));
  }

  /** A percentage for ranks: +12%, -3.5%. */
  function formatPercent(fraction) {
    var value = fraction * 100;
    var text = Math.abs(value) >= 10 ? value.toFixed(0) : value.toFixed(1);
    return (value > 0 ? "+" : "") + text + "%";
  }

  /** A duration for people: 42 s, 5 min, 3.5 h, 12 d. */
  function formatDuration(seconds) {
    if (seconds < 60) {
      return Math.round(seconds) + " s";
    }
    if (seconds < 3600) {
      return Math.round(seconds / 60) + " min";
    }
    if (seconds < 86400) {
      return Number((seconds / 3600).toFixed(1)) + " h";
    }
    return Number((seconds / 86400).toFixed(1)) + " d";
  }

  // -- options -----------------------------------------------------------------------------

  /** Text from markup or the original's stringified options, as a value: JSON where it decodes, else the text. */
  function decodeText(value) {
    if (typeof value !== "string") {
      return value;
    }
    var text = value.trim();
    if (text === "true") {
      return true;
    }
    if (text === "false") {
      return false;
    }
    var head = text.charAt(0);
    if (head === "[" || head === "{" || head === "\"") {
      try {
        return JSON.parse(text);
      } catch (ignored) {
        try {
          return JSON.parse(text.replace(/'/g, "\""));
        } catch (alsoIgnored) {
          return value;
        }
      }
    }
    return value;
  }

  function flag(value) {
    if (typeof value === "string") {
      return ["", "false", "0", "no", "off", "none", "null"].indexOf(value.trim().toLowerCase()) < 0;
    }
    return !!value;
  }

  /**
   * The widget's options from what a page gave (Hailwhale.graph, data- attributes, the
   * original's add_graph with every value a string): the original's names (category,
   * dimension, metric, autoupdate, width_factor) are aliases, "true"/"false" are booleans.
   */
  function normalizeOptions(given) {
    var o = {};
    Object.keys(given || {}).forEach(function (name) {
      o[name] = decodeText(given[name]);
    });
    var out = {
      pk: o.pk !== undefined ? o.pk : o.category !== undefined ? o.category : "_",
      dimensions: o.dimensions !== undefined ? o.dimensions : o.dimension,
      metrics: o.metrics !== undefined ? o.metrics : o.metric !== undefined ? o.metric : "hits",
      depth: o.depth,
      period: o.period,
      limit: o.limit !== undefined ? o.limit : 10,
      sort: o.sort,
      tz: o.tz,
      tzoffset: o.tzoffset,
      title: o.title,
      host: o.host !== undefined ? o.host : o.hwurl,
      token: o.token,
      grant: o.grant,
      height: o.height !== undefined ? parseInt(o.height, 10) || 300 : 300,
      interval: Math.max(parseInt(o.interval, 10) || 6000, 1000),
      live: o.live !== undefined ? flag(o.live) : o.autoupdate !== undefined ? flag(o.autoupdate) : true,
      colors: Array.isArray(o.colors) ? o.colors : undefined,
      widthFactor: parseFloat(o.widthFactor !== undefined ? o.widthFactor : o.width_factor) || undefined
    };
    if (o.metric_two !== undefined && typeof out.metrics === "string") {
      out.metrics = [out.metrics, o.metric_two];
    }
    if (o.area !== undefined) {
      var area = typeof o.area === "string" ? o.area.trim().toLowerCase() : o.area;
      out.area = area === "percent" || area === "expand" ? "percent" : flag(area);
      if (out.area && out.depth === undefined) {
        out.depth = 1; // the original's area graphs were of the children
      }
    }
    if (o.stacked !== undefined) {
      out.stacked = flag(o.stacked);
    }
    if (typeof out.host === "string") {
      out.host = out.host.replace(/\/+$/, "");
    }
    return out;
  }

  function asParam(value) {
    return typeof value === "string" ? value : JSON.stringify(value);
  }

  /** The /plotpoints query string for the options (the token, if any, goes in a header, never here). */
  function plotpointsQuery(options) {
    var parts = [["pk", asParam(options.pk)], ["metrics", asParam(options.metrics)]];
    ["dimensions", "period", "depth", "limit", "sort", "tz", "tzoffset", "grant"].forEach(function (name) {
      var value = options[name];
      if (value !== undefined && value !== null && value !== "") {
        parts.push([name, asParam(value)]);
      }
    });
    return parts.map(function (pair) {
      return encodeURIComponent(pair[0]) + "=" + encodeURIComponent(pair[1]);
    }).join("&");
  }

  /** Seconds east of UTC of an hhmm offset (-0700, +0530, -5), or null. */
  function offsetSeconds(text) {
    var match = /^([+-]?)(\d{1,4})$/.exec(String(text || "").trim());
    if (!match) {
      return null;
    }
    var digits = match[2];
    var hours = digits.length <= 2 ? parseInt(digits, 10) : parseInt(digits.slice(0, -2), 10);
    var minutes = digits.length <= 2 ? 0 : parseInt(digits.slice(-2), 10);
    return (match[1] === "-" ? -1 : 1) * (hours * 3600 + minutes * 60);
  }

  // -- the dashboard's state -----------------------------------------------------------------

  var STATE_DEFAULTS = { period: "thirty", depth: 1, sort: "", limit: 10, dimension: "_", chart: "", mode: "lines" };
  var MODES = {
    lines: { area: false, stacked: false },
    area: { area: true, stacked: false },
    stacked: { area: true, stacked: true },
    percent: { area: "percent", stacked: true }
  };

  /** The dashboard's state from its URL's query string (pk and metrics as JSON). */
  function stateFromQuery(search) {
    var params = new URLSearchParams(search || "");
    var state = {
      pk: null,
      dimension: STATE_DEFAULTS.dimension,
      metrics: [],
      chart: STATE_DEFAULTS.chart,
      period: params.get("period") || STATE_DEFAULTS.period,
      depth: STATE_DEFAULTS.depth,
      sort: params.get("sort") || STATE_DEFAULTS.sort,
      limit: STATE_DEFAULTS.limit,
      tz: params.get("tz") || "",
      mode: MODES[params.get("mode")] ? params.get("mode") : STATE_DEFAULTS.mode
    };
    if (params.get("pk")) {
      var pk = decodeText(params.get("pk"));
      state.pk = Array.isArray(pk) ? pk.map(String) : [String(pk)];
    }
    if (params.get("dimension")) {
      state.dimension = params.get("dimension");
    }
    if (params.get("metrics")) {
      var metrics = decodeText(params.get("metrics"));
      state.metrics = Array.isArray(metrics) ? metrics.map(String) : [String(metrics)];
    }
    if (params.get("chart")) {
      state.chart = params.get("chart");
    }
    ["depth", "limit"].forEach(function (name) {
      var value = parseInt(params.get(name), 10);
      if (!isNaN(value) && value >= 0) {
        state[name] = value;
      }
    });
    return state;
  }

  /** The query string that holds the dashboard's state (what differs from the defaults). */
  function queryFromState(state) {
    var params = new URLSearchParams();
    if (state.pk) {
      params.set("pk", state.pk.length === 1 ? state.pk[0] : JSON.stringify(state.pk));
    }
    if (state.dimension && state.dimension !== STATE_DEFAULTS.dimension) {
      params.set("dimension", state.dimension);
    }
    if (state.metrics && state.metrics.length) {
      params.set("metrics", JSON.stringify(state.metrics));
    }
    ["chart", "period", "depth", "sort", "limit", "tz", "mode"].forEach(function (name) {
      if (state[name] !== undefined && state[name] !== "" && state[name] !== STATE_DEFAULTS[name]) {
        params.set(name, String(state[name]));
      }
    });
    return params.toString();
  }

  /** The sort's formula without its direction, and whether it is descending. */
  function parseSort(text) {
    var value = String(text || "").trim();
    return { formula: value.replace(/^-/, ""), descending: value.charAt(0) === "-" };
  }

  /** Events per second between two /stats snapshots taken ``seconds`` apart. */
  function rate(before, after, field, seconds) {
    if (!before || !after || !(seconds > 0)) {
      return null;
    }
    return Math.max(0, (after[field] - before[field]) / seconds);
  }

  /** The graph options of a chart mode: lines, area, stacked or percent. */
  function modeOptions(mode) {
    var found = MODES[mode] || MODES.lines;
    return { area: found.area, stacked: found.stacked };
  }

  return {
    PALETTE: PALETTE,
    modeOptions: modeOptions,
    pathOf: pathOf,
    label: label,
    seriesFromAnswer: seriesFromAnswer,
    sameSeries: sameSeries,
    isEmpty: isEmpty,
    stack: stack,
    percentOf: percentOf,
    lineWidth: lineWidth,
    colorFor: colorFor,
    plan: plan,
    formatValue: formatValue,
    formatShort: formatShort,
    formatPercent: formatPercent,
    formatDuration: formatDuration,
    decodeText: decodeText,
    normalizeOptions: normalizeOptions,
    plotpointsQuery: plotpointsQuery,
    offsetSeconds: offsetSeconds,
    stateFromQuery: stateFromQuery,
    queryFromState: queryFromState,
    parseSort: parseSort,
    rate: rate
  };
});

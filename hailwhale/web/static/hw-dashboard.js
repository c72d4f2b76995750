/*
 * The dashboard at / : browse the pk tree, pick a dimension, metrics or formulas, a period,
 * depth, sort and top N; see the chart (the widget), the grouped table (/totals), which
 * sub-dimensions matter (/rank) and the daemon's health (/stats).  The URL holds the state.
 */
(function (window, document) {
  "use strict";
  var Core = window.HailwhaleCore;
  var Hailwhale = window.Hailwhale;
  var TOKEN_KEY = "hailwhale-read-token";
  var REFRESH_MS = 6000;
  var STATS_MS = 5000;

  var state = Core.stateFromQuery(window.location.search);
  var fromUrl = new URLSearchParams(window.location.search);
  var token = null;
  try {
    token = window.sessionStorage.getItem(TOKEN_KEY);
  } catch (ignored) {
    token = null;
  }
  var graph = null;
  var pkInfo = null;
  var dimensions = [];
  var important = {};
  var generation = { table: 0, rank: 0, pk: 0 };
  var lastStats = null;
  var refreshTimer = null;
  var asking = false;

  function $(id) {
    return document.getElementById(id);
  }

  function make(tag, className, text, parent) {
    var element = document.createElement(tag);
    if (className) {
      element.className = className;
    }
    if (text !== undefined && text !== null) {
      element.textContent = text;
    }
    if (parent) {
      parent.appendChild(element);
    }
    return element;
  }

  function clear(element) {
    while (element.firstChild) {
      element.removeChild(element.firstChild);
    }
  }

  function query(params) {
    return Object.keys(params).filter(function (name) {
      return params[name] !== undefined && params[name] !== null && params[name] !== "";
    }).map(function (name) {
      var value = params[name];
      var text = typeof value === "string" ? value : JSON.stringify(value);
      return encodeURIComponent(name) + "=" + encodeURIComponent(text);
    }).join("&");
  }

  /** GET path?params: {ok, status, body, url}; a 401 asks for the read token (once) instead. */
  function api(path, params) {
    var url = path + (params ? "?" + query(params) : "");
    var headers = {};
    if (token) {
      headers.Authorization = "Bearer " + token;
    }
    return window.fetch(url, { headers: headers, credentials: "same-origin" }).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        try {
          body = JSON.parse(text);
        } catch (ignored) {
          body = null;
        }
        if (response.status === 401) {
          askToken(body);
        }
        return { ok: response.status === 200, status: response.status, body: body, url: url };
      });
    }, function (error) {
      return { ok: false, status: 0, body: { error: "cannot reach the daemon: " + error.message }, url: url };
    });
  }

  function reason(answer) {
    var body = answer.body || {};
    return (body.error || "HTTP " + answer.status) + (body.reason ? " (" + body.reason + ")" : "");
  }

  // -- the read token ------------------------------------------------------------------------

  function askToken(body) {
    if (asking) {
      return;
    }
    asking = true;
    $("hw-token").hidden = false;
    var error = $("hw-token-error");
    error.hidden = !(token && body && body.reason === "wrong_token");
    error.textContent = "That token was refused; try again.";
    $("hw-token-input").focus();
  }

  function bindToken() {
    $("hw-token-form").addEventListener("submit", function (event) {
      event.preventDefault();
      token = $("hw-token-input").value.trim() || null;
      try {
        window.sessionStorage.setItem(TOKEN_KEY, token || "");
      } catch (ignored) {
        // storage refused: the token lasts as long as the page
      }
      $("hw-token").hidden = true;
      asking = false;
      if (graph) {
        graph.stop();
        graph = null;
      }
      start();
    });
  }

  // -- the pk tree -------------------------------------------------------------------------------

  function samePath(a, b) {
    return JSON.stringify(a || null) === JSON.stringify(b || null);
  }

  function pkText(pk) {
    return pk ? pk.join(" / ") : "";
  }

  /** Fill ``list`` with the child pks of ``pk`` (null: the top-level pks). */
  function loadPks(pk, list) {
    return api("/pks", pk ? { pk: pk } : null).then(function (answer) {
      if (!answer.ok) {
        if (answer.status !== 401) {
          showError("/pks: " + reason(answer));
        }
        return null;
      }
      clear(list);
      answer.body.children.forEach(function (child) {
        var item = make("li", "hw-tree-item", null, list);
        item.setAttribute("data-pk", JSON.stringify(child.pk));
        var row = make("div", "hw-tree-row", null, item);
        var toggle = make("button", "hw-tree-toggle", "▸", row);
        toggle.type = "button";
        toggle.setAttribute("aria-label", "show the pks under " + child.name);
        var name = make("button", "hw-tree-name", child.name, row);
        name.type = "button";
        var below = make("ul", "hw-tree", null, item);
        below.hidden = true;
        toggle.addEventListener("click", function () {
          expand(item, child.pk, below.hidden);
        });
        name.addEventListener("click", function () {
          expand(item, child.pk, true);
          choosePk(child.pk);
        });
      });
      if (answer.body.more > 0) {
        make("li", "hw-tree-more", "… and " + answer.body.more + " more", list);
      }
      markSelected();
      return answer.body;
    });
  }

  function expand(item, pk, open) {
    var below = item.querySelector("ul");
    var toggle = item.querySelector(".hw-tree-toggle");
    below.hidden = !open;
    toggle.textContent = open ? "▾" : "▸";
    if (open && !item.getAttribute("data-loaded")) {
      item.setAttribute("data-loaded", "1");
      return loadPks(pk, below).then(function (found) {
        if (found && !found.children.length) {
          toggle.textContent = "·";
          toggle.disabled = true;
        }
      });
    }
    return Promise.resolve(null);
  }

  /** Open the tree down to the selected pk. */
  function expandTo(pk) {
    var step = Promise.resolve(null);
    pk.slice(0, -1).forEach(function (name, index) {
      step = step.then(function () {
        var item = document.querySelector("li[data-pk='" + CSS.escape(JSON.stringify(pk.slice(0, index + 1))) + "']");
        return item ? expand(item, pk.slice(0, index + 1), true) : null;
      });
    });
    return step.then(markSelected);
  }

  function markSelected() {
    Array.prototype.forEach.call(document.querySelectorAll(".hw-tree-item"), function (item) {
      item.classList.toggle("hw-selected", item.getAttribute("data-pk") === JSON.stringify(state.pk));
    });
  }

  function choosePk(pk) {
    if (samePath(pk, state.pk)) {
      return;
    }
    state.pk = pk;
    state.metrics = [];
    state.chart = "";
    state.sort = "";
    state.dimension = "_";
    fromUrl = new URLSearchParams();
    selectPk();
  }

  /** Read what the selected pk has (metric names, dimensions), fill in defaults, then draw. */
  function selectPk() {
    var mine = ++generation.pk;
    markSelected();
    return Promise.all([
      api("/pks", { pk: state.pk }),
      api("/dimensions", { pk: state.pk, depth: 2 })
    ]).then(function (answers) {
      if (mine !== generation.pk) {
        return;
      }
      pkInfo = answers[0].ok ? answers[0].body : { metrics: [], children: [] };
      dimensions = answers[1].ok ? answers[1].body : [];
      if (!state.metrics.length) {
        state.metrics = defaultMetrics(pkInfo.metrics);
      }
      if (!fromUrl.get("dimension") && state.dimension === "_") {
        var first = dimensions.filter(function (d) {
          return d.depth === 1;
        })[0];
        state.dimension = first ? first.dimension : "_";
        if (!first && !fromUrl.get("depth")) {
          state.depth = 0;
        }
      }
      fillDimensions();
      render();
    });
  }

  function defaultMetrics(names) {
    var plain = (names || []).filter(function (name) {
      return name !== "hits" && name.indexOf("*") < 0 && !/\.sq$/.test(name);
    });
    var chosen = plain.slice(0, 3);
    if ((names || []).indexOf("hits") >= 0 || !chosen.length) {
      chosen.push("hits");
    }
    return chosen;
  }

  // -- controls ---------------------------------------------------------------------------------

  function option(select, value, text) {
    var element = make("option", null, text === undefined ? value : text, select);
    element.value = value;
    return element;
  }

  function fillDimensions() {
    var select = $("hw-dimension");
    clear(select);
    option(select, "_", "everything (_)");
    dimensions.forEach(function (d) {
      if (d.depth > 0) {
        option(select, d.dimension, (d.depth > 1 ? "   ".repeat(d.depth - 1) + "› " : "") + d.path[d.path.length - 1]);
      }
    });
    if (!Array.prototype.some.call(select.options, function (o) {
      return o.value === state.dimension;
    })) {
      option(select, state.dimension, state.dimension);
    }
  }

  function chartMetric() {
    if (state.chart && state.metrics.indexOf(state.chart) >= 0) {
      return state.chart;
    }
    return state.metrics[0] || "hits";
  }

  function syncControls() {
    $("hw-dimension").value = state.dimension;
    var period = $("hw-period");
    if (!Array.prototype.some.call(period.options, function (o) {
      return o.value === state.period;
    })) {
      option(period, state.period);
    }
    period.value = state.period;
    $("hw-depth").value = String(Math.min(state.depth, 3));
    $("hw-limit").value = String(state.limit);
    $("hw-mode").value = state.mode;
    var sort = $("hw-sort");
    clear(sort);
    option(sort, "", "first metric ↓");
    state.metrics.forEach(function (metric) {
      option(sort, "-" + metric, metric + " ↓");
      option(sort, metric, metric + " ↑");
    });
    if (state.sort && !Array.prototype.some.call(sort.options, function (o) {
      return o.value === state.sort;
    })) {
      option(sort, state.sort);
    }
    sort.value = state.sort;
    var chart = $("hw-chart-metric");
    clear(chart);
    state.metrics.forEach(function (metric) {
      option(chart, metric);
    });
    chart.value = chartMetric();
    renderChips();
  }

  function renderChips() {
    var chips = $("hw-metric-chips");
    clear(chips);
    var names = (pkInfo && pkInfo.metrics) || [];
    var all = names.concat(state.metrics.filter(function (metric) {
      return names.indexOf(metric) < 0;
    }));
    all.forEach(function (metric) {
      var on = state.metrics.indexOf(metric) >= 0;
      var chip = make("button", "hw-chip" + (on ? " hw-on" : "") + (names.indexOf(metric) < 0 ? " hw-formula-chip" : ""),
        metric, chips);
      chip.type = "button";
      chip.setAttribute("data-metric", metric);
      chip.setAttribute("aria-pressed", on ? "true" : "false");
      chip.addEventListener("click", function () {
        toggleMetric(metric);
      });
    });
  }

  function toggleMetric(metric) {
    var at = state.metrics.indexOf(metric);
    if (at >= 0) {
      if (state.metrics.length === 1) {
        return; // something must be shown
      }
      state.metrics.splice(at, 1);
      if (state.sort && Core.parseSort(state.sort).formula === metric) {
        state.sort = "";
      }
    } else {
      state.metrics.push(metric);
    }
    render();
  }

  function bindControls() {
    $("hw-dimension").addEventListener("change", function (event) {
      state.dimension = event.target.value;
      render();
    });
    $("hw-period").addEventListener("change", function (event) {
      state.period = event.target.value;
      render();
    });
    $("hw-depth").addEventListener("change", function (event) {
      state.depth = parseInt(event.target.value, 10) || 0;
      render();
    });
    $("hw-limit").addEventListener("change", function (event) {
      var value = parseInt(event.target.value, 10);
      state.limit = isNaN(value) || value < 0 ? 10 : value;
      render();
    });
    $("hw-sort").addEventListener("change", function (event) {
      state.sort = event.target.value;
      render();
    });
    $("hw-chart-metric").addEventListener("change", function (event) {
      state.chart = event.target.value;
      render();
    });
    $("hw-mode").addEventListener("change", function (event) {
      state.mode = event.target.value;
      render();
    });
    $("hw-formula-form").addEventListener("submit", function (event) {
      event.preventDefault();
      var input = $("hw-formula");
      var text = input.value.trim();
      if (text && state.metrics.indexOf(text) < 0) {
        state.metrics.push(text);
        state.chart = text;
      }
      input.value = "";
      render();
    });
  }

  // -- drawing ------------------------------------------------------------------------------------

  function showError(text) {
    var box = $("hw-error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function dimensionLabel(encoding) {
    var path = Core.pathOf(encoding);
    return path.length ? path.join(" › ") : "everything";
  }

  function render() {
    if (!state.pk) {
      return;
    }
    window.history.replaceState(null, "", "?" + Core.queryFromState(state));
    showError("");
    syncControls();
    markSelected();
    $("hw-title").textContent = pkText(state.pk) + (state.dimension !== "_" ? "  ›  " + dimensionLabel(state.dimension) : "");
    document.title = pkText(state.pk) + " · hailwhale";
    drawGraph();
    loadTable();
    loadRank();
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(refresh, REFRESH_MS);
  }

  function refresh() {
    if (!document.hidden && !asking) {
      loadTable();
      loadRank();
    }
    refreshTimer = setTimeout(refresh, REFRESH_MS);
  }

  function drawGraph() {
    var metric = chartMetric();
    var mode = Core.modeOptions(state.mode);
    var options = {
      pk: state.pk,
      dimensions: state.dimension,
      metrics: [metric],
      depth: state.depth,
      period: state.period,
      limit: state.limit,
      sort: state.sort || undefined,
      tz: state.tz || undefined,
      token: token || undefined,
      host: "",
      height: 320,
      interval: REFRESH_MS,
      area: mode.area,
      stacked: mode.stacked
    };
    $("hw-chart-title").textContent = metric + (state.depth > 0 ? " by " + dimensionLabel(state.dimension) : "");
    if (graph) {
      graph.update(options);
    } else {
      graph = Hailwhale.graph($("hw-chart"), options);
      $("hw-chart").addEventListener("hailwhale:drawn", paintSwatches);
    }
  }

  /** The chart's colour of each table row it draws, so that the table reads as the chart's legend. */
  function paintSwatches() {
    var colors = {};
    if (graph && graph.plan) {
      graph.plan.series.forEach(function (s) {
        colors[s.key.split("\u0000")[0]] = s.color;
      });
    }
    Array.prototype.forEach.call(document.querySelectorAll("#hw-table tr[data-dimension]"), function (tr) {
      var swatch = tr.querySelector(".hw-swatch");
      var color = colors[tr.getAttribute("data-dimension")];
      if (swatch) {
        swatch.style.background = color || "transparent";
        swatch.style.borderColor = color || "transparent";
      }
    });
  }

  function loadTable() {
    var mine = ++generation.table;
    var params = {
      pk: state.pk,
      dimensions: state.dimension,
      metrics: state.metrics,
      period: state.period,
      depth: Math.max(state.depth, 1),
      sort: state.sort || undefined,
      limit: state.limit,
      tz: state.tz || undefined
    };
    api("/totals", params).then(function (answer) {
      if (mine !== generation.table) {
        return;
      }
      var table = $("hw-table");
      table.setAttribute("data-hw-src", answer.url);
      if (!answer.ok) {
        clear(table);
        $("hw-more").textContent = "";
        var row = make("tr", null, null, make("tbody", null, null, table));
        make("td", "hw-table-error", "hailwhale: " + reason(answer), row);
        table.setAttribute("data-hw-state", "error");
        return;
      }
      var period = answer.body[Object.keys(answer.body)[0]];
      renderTable(table, period.rows, period.more);
      paintSwatches();
      table.setAttribute("data-hw-state", "drawn");
    });
  }

  function renderTable(table, rows, more) {
    clear(table);
    var sort = Core.parseSort(state.sort || "-" + state.metrics[0]);
    var head = make("tr", null, null, make("thead", null, null, table));
    make("th", "hw-dim-col", "dimension", head);
    state.metrics.forEach(function (metric) {
      var active = sort.formula === metric;
      var cell = make("th", "hw-num hw-sortable" + (active ? " hw-sorted" : ""), metric + (active ? (sort.descending ? " ▾" : " ▴") : ""), head);
      cell.setAttribute("data-metric", metric);
      cell.title = "sort by " + metric;
      cell.addEventListener("click", function () {
        state.sort = active && sort.descending ? metric : "-" + metric;
        render();
      });
    });
    var body = make("tbody", null, null, table);
    var root = rows.length ? rows[0].path : [];
    var biggest = 0;
    rows.slice(1).forEach(function (row) {
      biggest = Math.max(biggest, Math.abs(row.metrics[sort.formula] || 0));
    });
    rows.forEach(function (row, index) {
      var tr = make("tr", index === 0 ? "hw-parent" : "hw-child", null, body);
      tr.setAttribute("data-dimension", row.dimension);
      var name = make("td", "hw-dim-col", null, tr);
      var depth = row.path.length - root.length;
      name.style.paddingLeft = 0.6 + 1.1 * Math.max(depth - 1, 0) + "em";
      make("span", "hw-swatch", null, name);
      make("span", null, Core.label(row.path, root), name);
      if (important[row.dimension] && index > 0) {
        var mark = make("span", "hw-important", "●", name);
        mark.title = "matters: " + important[row.dimension];
      }
      state.metrics.forEach(function (metric) {
        var value = row.metrics[metric];
        var cell = make("td", "hw-num", null, tr);
        cell.setAttribute("data-value", JSON.stringify(value === undefined ? null : value));
        if (metric === sort.formula && index > 0 && biggest > 0) {
          var bar = make("span", "hw-bar", null, cell);
          bar.style.width = Math.round((100 * Math.abs(value || 0)) / biggest) + "%";
        }
        make("span", "hw-value", Core.formatValue(value), cell);
      });
    });
    var moreBox = $("hw-more");
    clear(moreBox);
    if (more > 0) {
      make("span", null, "… and " + more + " more ", moreBox);
      if (state.limit > 0) {
        var button = make("button", "hw-link", "show " + Math.min(more, 10) + " more", moreBox);
        button.type = "button";
        button.addEventListener("click", function () {
          state.limit += 10;
          render();
        });
      }
    }
  }

  /** What the rank panel ranks by: the sort's formula when one is chosen (the table's question), else the chart's. */
  function rankMetric() {
    var sort = Core.parseSort(state.sort);
    return sort.formula && state.metrics.indexOf(sort.formula) >= 0 ? sort.formula : chartMetric();
  }

  function loadRank() {
    var mine = ++generation.rank;
    var metric = rankMetric();
    var list = $("hw-rank");
    if (/:/.test(metric)) {
      clear(list);
      make("li", "hw-rank-none", "Ranking takes a total; " + metric + " is a level.", list);
      return;
    }
    $("hw-rank-title").textContent = "What matters for " + metric;
    api("/rank", { pk: state.pk, dimension: state.dimension, metric: metric, period: state.period, tz: state.tz || undefined })
      .then(function (answer) {
        if (mine !== generation.rank) {
          return;
        }
        clear(list);
        list.setAttribute("data-hw-src", answer.url);
        if (!answer.ok) {
          make("li", "hw-rank-error", "hailwhale: " + reason(answer), list);
          return;
        }
        renderRank(list, answer.body, metric);
      });
  }

  function renderRank(list, ranked, metric) {
    var ratio = metric.indexOf("/") >= 0;
    var own = ranked[state.dimension];
    var root = Core.pathOf(state.dimension);
    important = {};
    var shown = 0;
    Object.keys(ranked).forEach(function (key) {
      var entry = ranked[key];
      if (!entry.important || key === state.dimension) {
        return;
      }
      var why;
      if (ratio) {
        why = Core.formatPercent(entry.difference) + " vs overall, over " + Core.formatValue(entry.count) + " " +
          metric.split("/")[1];
      } else {
        why = (own && own.score ? Math.round((100 * entry.score) / own.score) + "% of the total" : "");
      }
      important[key] = why;
      if (shown >= 8) {
        return;
      }
      shown += 1;
      var item = make("li", "hw-rank-item", null, list);
      item.setAttribute("data-dimension", key);
      make("span", "hw-rank-name", Core.label(Core.pathOf(key), root), item);
      make("span", "hw-rank-value", Core.formatValue(entry.score), item);
      make("span", "hw-rank-why", why, item);
    });
    if (!shown) {
      make("li", "hw-rank-none", ratio
        ? "Nothing stands out: none is more than 10% off the overall " + metric + " over more than 5 " +
          metric.split("/")[1] + "."
        : "Nothing stands out: none has a total above 10 and above 10% of the whole on its own.", list);
    }
    Array.prototype.forEach.call(document.querySelectorAll("#hw-table tr[data-dimension]"), function (tr) {
      var name = tr.querySelector(".hw-dim-col");
      var key = tr.getAttribute("data-dimension");
      if (important[key] && tr.className === "hw-child" && !name.querySelector(".hw-important")) {
        var mark = make("span", "hw-important", "●", name);
        mark.title = "matters: " + important[key];
      }
    });
  }

  // -- the daemon ---------------------------------------------------------------------------------

  function sum(counts) {
    return Object.keys(counts || {}).reduce(function (total, name) {
      return total + counts[name];
    }, 0);
  }

  function pollStats() {
    Promise.all([api("/health"), api("/stats")]).then(function (answers) {
      var health = answers[0];
      var stats = answers[1];
      var pill = $("hw-health");
      clear(pill);
      var ok = health.ok && health.body && health.body.status === "ok";
      make("span", "hw-dot " + (ok ? "hw-ok" : "hw-bad"), null, pill);
      var parts = [ok ? "healthy" : "unhealthy" + (health.body && health.body.reason ? ": " + health.body.reason : "")];
      var list = $("hw-stats");
      if (stats.ok) {
        var now = Date.now() / 1000;
        var rate = lastStats ? Core.rate(lastStats.body, stats.body, "events_accepted", now - lastStats.at) : null;
        var flushRate = lastStats ? Core.rate(lastStats.body, stats.body, "events_flushed", now - lastStats.at) : null;
        lastStats = { body: stats.body, at: now };
        var s = stats.body;
        if (rate !== null) {
          parts.push(Core.formatShort(rate) + " events/s");
        }
        parts.push("flush " + Core.formatShort((s.last_flush_seconds || 0) * 1000) + " ms");
        clear(list);
        [
          ["events in", rate === null ? "…" : Core.formatValue(rate) + " /s"],
          ["written", flushRate === null ? "…" : Core.formatValue(flushRate) + " /s"],
          ["accepted since start", Core.formatValue(s.events_accepted)],
          ["pending", Core.formatValue(s.pending_events) + " events in " + Core.formatValue(s.pending_keys) + " keys"],
          ["backlog", Core.formatValue(s.backlog_events) + " events"],
          ["store", s.store_reachable ? "reachable" : "unreachable"],
          ["last flush", Core.formatValue((s.last_flush_seconds || 0) * 1000) + " ms"],
          ["flushes", Core.formatValue(s.flushes_ok) + " ok, " + Core.formatValue(s.flushes_failed) + " failed"],
          ["bad lines", Core.formatValue(sum(s.lines_bad))],
          ["bad requests", Core.formatValue(sum(s.http_bad_requests))],
          ["dropped", Core.formatValue(sum(s.events_dropped))],
          ["uptime", Core.formatDuration(s.uptime_seconds || 0)]
        ].forEach(function (pair) {
          var item = make("div", "hw-stat", null, list);
          make("dt", null, pair[0], item);
          make("dd", null, pair[1], item);
        });
      }
      make("span", null, parts.join(" · "), pill);
    });
  }

  function start() {
    loadPks(null, $("hw-pks")).then(function (root) {
      if (!root) {
        return;
      }
      var note = $("hw-pks-note");
      if (!root.children.length) {
        note.hidden = false;
        note.textContent = "Nothing counted yet. Count something: " +
          "curl -g 'http://" + window.location.host + "/count?pk=test&metrics={\"dollars\":5}'";
        return;
      }
      note.hidden = true;
      if (!state.pk) {
        state.pk = root.children[0].pk;
      }
      expandTo(state.pk);
      selectPk();
    });
  }

  bindToken();
  bindControls();
  start();
  pollStats();
  setTimeout(pollStats, 1000); // a second sample soon, for the rates
  setInterval(function () {
    if (!document.hidden && !asking) {
      pollStats();
    }
  }, STATS_MS);
})(window, document);

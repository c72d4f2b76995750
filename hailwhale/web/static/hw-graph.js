/*
 * The hailwhale graph widget: Hailwhale.graph(element, options) draws a live time-series
 * chart from /plotpoints with uPlot, polling and updating in place.  No build step and no
 * jQuery needed; with jQuery on the page, the original's $.hailwhale(host).add_graph(target,
 * {...}) works too, and <div data-hailwhale-graph data-pk='["Product","123"]' ...> starts
 * by itself.  Served inside /hailwhale.js (after uPlot and hw-core.js).
 */
(function (window, document) {
  "use strict";
  var Core = window.HailwhaleCore;
  var script = document.currentScript;
  var scriptBase = script && script.src ? script.src.replace(/\/(hailwhale\.js|static\/[\w.-]+\.js)(\?.*)?$/, "") : "";
  var assets = window.HailwhaleAssets || { css: [] };

  function resolveElement(target) {
    if (!target) {
      return null;
    }
    if (target.jquery) {
      return target[0] || null;
    }
    if (typeof target === "string") {
      return document.getElementById(target.replace(/^#/, "")) || document.querySelector(target);
    }
    return target;
  }

  function make(tag, className, parent) {
    var element = document.createElement(tag);
    if (className) {
      element.className = className;
    }
    if (parent) {
      parent.appendChild(element);
    }
    return element;
  }

  /** The widget's style sheets, from the daemon that served it, unless the page has them. */
  function ensureStyles(host) {
    if (document.querySelector("link[data-hailwhale-css]")) {
      return;
    }
    (assets.css || []).forEach(function (path) {
      var link = make("link");
      link.rel = "stylesheet";
      link.href = host + path;
      link.setAttribute("data-hailwhale-css", "");
      (document.head || document.documentElement).appendChild(link);
    });
  }

  function withAlpha(hex, alpha) {
    var match = /^#([0-9a-f]{6})$/i.exec(hex);
    if (!match) {
      return hex;
    }
    var n = parseInt(match[1], 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  /** uPlot's tzDate for the graph's zone: an IANA zone, an hhmm offset, else UTC (the daemon's default). */
  function zoneDate(options) {
    var offset = Core.offsetSeconds(options.tzoffset);
    if (!options.tz && offset !== null) {
      return function (ts) {
        var shifted = new Date((ts + offset) * 1000);
        return new Date(shifted.getTime() + shifted.getTimezoneOffset() * 60000);
      };
    }
    var zone = options.tz || "Etc/UTC";
    return function (ts) {
      return window.uPlot.tzDate(new Date(ts * 1000), zone);
    };
  }

  function describe(options) {
    var pk = Core.decodeText(options.pk);
    var text = Array.isArray(pk) ? pk.join(" / ") : String(pk);
    if (options.dimensions !== undefined && options.dimensions !== "_") {
      var dims = Core.decodeText(options.dimensions);
      text += " [" + (typeof dims === "string" ? dims : JSON.stringify(dims)) + "]";
    }
    return text;
  }

  function Graph(element, given) {
    this.element = element;
    this.options = Core.normalizeOptions(given);
    this.host = this.options.host !== undefined ? this.options.host : scriptBase;
    this.chart = null;
    this.built = null;
    this.plan = null;
    this.data = null;
    this.answer = null;
    this.error = null;
    this.src = null;
    this.creates = 0;
    this.updates = 0;
    this.timer = null;
    this.stopped = false;
    ensureStyles(this.host);
    element.innerHTML = "";
    var box = make("div", "hw-graph", element);
    if (this.options.title) {
      make("div", "hw-graph-title", box).textContent = this.options.title;
    }
    this.note = make("div", "hw-graph-note", box);
    this.note.setAttribute("role", "status");
    this.note.hidden = true;
    this.canvas = make("div", "hw-graph-chart", box);
    this.canvas.style.minHeight = this.options.height + "px";
    element.hailwhale = this;
    element.setAttribute("data-hw-state", "loading");
    var self = this;
    if (typeof window.ResizeObserver === "function") {
      this.resizer = new window.ResizeObserver(function () {
        if (self.chart && self.canvas.clientWidth && self.canvas.clientWidth !== self.chart.width) {
          self.chart.setSize({ width: self.canvas.clientWidth, height: self.options.height });
        }
      });
      this.resizer.observe(this.canvas);
    }
    this.onVisible = function () {
      if (!document.hidden && self.waiting) {
        self.waiting = false;
        self.refresh();
      }
    };
    document.addEventListener("visibilitychange", this.onVisible);
    this.refresh();
  }

  /** The /plotpoints URL this graph reads. */
  Graph.prototype.url = function () {
    return this.host + "/plotpoints?" + Core.plotpointsQuery(this.options);
  };

  /** Read /plotpoints now (and again after the interval, while live). */
  Graph.prototype.refresh = function () {
    var self = this;
    if (this.loading || this.stopped) {
      return;
    }
    clearTimeout(this.timer);
    this.loading = true;
    var url = this.url();
    var headers = {};
    if (this.options.token) {
      headers.Authorization = "Bearer " + this.options.token;
    }
    window.fetch(url, { headers: headers, credentials: "omit" })
      .then(function (response) {
        return response.text().then(function (text) {
          var body = null;
          try {
            body = JSON.parse(text);
          } catch (ignored) {
            body = null;
          }
          if (response.status !== 200) {
            var reason = body && body.error ? body.error + (body.reason ? " (" + body.reason + ")" : "") : text;
            self.fail(response.status, reason, body);
          } else {
            self.draw(body, url);
          }
        });
      }, function (error) {
        self.fail(0, "cannot reach hailwhale at " + (self.host || window.location.origin) + " (" + error.message + ")");
      })
      .then(function () {
        self.loading = false;
        self.schedule();
      }, function (error) {
        self.loading = false;
        self.fail(0, "the graph could not be drawn: " + error.message);
        self.schedule();
      });
  };

  Graph.prototype.schedule = function () {
    var self = this;
    if (!this.options.live || this.stopped) {
      return;
    }
    this.timer = setTimeout(function () {
      if (document.hidden) {
        self.waiting = true;
      } else {
        self.refresh();
      }
    }, this.options.interval);
  };

  /** Stop polling and let go of the chart. */
  Graph.prototype.stop = function () {
    this.stopped = true;
    clearTimeout(this.timer);
    document.removeEventListener("visibilitychange", this.onVisible);
    if (this.resizer) {
      this.resizer.disconnect();
    }
    if (this.chart) {
      this.chart.destroy();
      this.chart = null;
    }
  };

  /** Change options (pk, metrics, period, ...) and redraw at once. */
  Graph.prototype.update = function (given) {
    var merged = {};
    var self = this;
    Object.keys(this.options).forEach(function (name) {
      merged[name] = self.options[name];
    });
    Object.keys(given).forEach(function (name) {
      merged[name] = given[name];
    });
    this.options = Core.normalizeOptions(merged);
    this.loading = false;
    this.refresh();
  };

  Graph.prototype.showNote = function (text, isError) {
    this.note.textContent = text;
    this.note.hidden = !text;
    this.note.className = "hw-graph-note" + (isError ? " hw-graph-error" : "");
  };

  Graph.prototype.fail = function (status, reason, body) {
    this.error = { status: status, reason: reason, body: body || null };
    if (!this.chart) {
      this.canvas.style.minHeight = "0"; // the note alone, not a blank box under it
    }
    this.element.setAttribute("data-hw-state", "error");
    this.showNote("hailwhale: " + reason, true);
    this.emit("hailwhale:error", this.error);
  };

  Graph.prototype.emit = function (name, detail) {
    var event;
    if (typeof window.CustomEvent === "function") {
      event = new window.CustomEvent(name, { detail: detail });
    } else {
      event = document.createEvent("CustomEvent");
      event.initCustomEvent(name, false, false, detail);
    }
    this.element.dispatchEvent(event);
  };

  Graph.prototype.draw = function (answer, url) {
    var started = window.performance ? window.performance.now() : 0;
    var built = Core.seriesFromAnswer(answer);
    var plan = Core.plan(built, this.options);
    var data = [plan.times].concat(plan.series.map(function (s) {
      return s.values;
    }));
    var same = this.chart && Core.sameSeries(this.built, built) && this.plan && this.plan.percent === plan.percent &&
      this.plan.stacked === plan.stacked && this.plan.rootApart === plan.rootApart;
    this.answer = answer;
    this.src = url;
    this.built = built;
    this.plan = plan;
    this.data = data;
    this.error = null;
    if (!built.series.length || Core.isEmpty(built)) {
      this.showNote("No counts for " + describe(this.options) + " in " + (this.options.period || "thirty") + ".", false);
    } else {
      this.showNote("", false);
    }
    this.canvas.style.minHeight = this.options.height + "px";
    if (same) {
      this.chart.setData(data);
      this.updates += 1;
    } else {
      if (this.chart) {
        this.chart.destroy();
      }
      this.chart = new window.uPlot(this.chartOptions(plan), data, this.canvas);
      this.creates += 1;
    }
    this.drawMs = window.performance ? window.performance.now() - started : 0;
    this.element.setAttribute("data-hw-state", "drawn");
    this.emit("hailwhale:drawn", { creates: this.creates, updates: this.updates });
  };

  Graph.prototype.chartOptions = function (plan) {
    var self = this;
    var index = {};
    plan.series.forEach(function (s, i) {
      index[s.key] = i + 1;
    });
    var hasSecond = plan.series.some(function (s) {
      return s.axis === 1;
    });
    var mainScale = plan.percent ? "%" : "y";
    var series = [{
      label: "time",
      value: function (u, ts) {
        if (ts === null || ts === undefined) {
          return "latest";
        }
        var d = zoneDate(self.options)(ts);
        return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" +
          String(d.getDate()).padStart(2, "0") + " " + String(d.getHours()).padStart(2, "0") + ":" +
          String(d.getMinutes()).padStart(2, "0");
      }
    }].concat(plan.series.map(function (s, i) {
      return {
        label: s.label,
        stroke: s.color,
        width: s.width,
        fill: s.fill ? withAlpha(s.color, s.stackedOn || plan.stacked ? 0.55 : 0.18) : undefined,
        scale: s.axis === 1 ? "y2" : s.axis === 2 ? "overall" : mainScale,
        points: { show: plan.times.length <= 60, size: s.root ? 5 : 3 },
        value: function (u, v, seriesIndex, dataIndex) {
          var current = self.plan && self.plan.series[i];
          if (!current || !current.raw.length) {
            return "–";
          }
          // away from the chart, the legend shows the latest point
          var at = dataIndex === null || dataIndex === undefined ? current.raw.length - 1 : dataIndex;
          return Core.formatValue(current.raw[at]);
        }
      };
    }));
    var bands = [];
    plan.series.forEach(function (s) {
      if (s.stackedOn && s.fill) {
        bands.push({ series: [index[s.key], index[s.stackedOn]], fill: withAlpha(s.color, 0.55) });
      }
    });
    var ticks = function (u, splits) {
      return splits.map(function (v) {
        return v === null ? "" : Core.formatShort(v);
      });
    };
    var axes = [
      { stroke: "#555", grid: { stroke: "#eee" }, ticks: { stroke: "#ddd" } },
      { scale: mainScale, values: plan.percent ? function (u, splits) {
        return splits.map(function (v) { return v + "%"; });
      } : ticks, stroke: "#555", grid: { stroke: "#eee" }, ticks: { stroke: "#ddd" }, size: 56 }
    ];
    if (hasSecond) {
      axes.push({ scale: "y2", side: 1, values: ticks, grid: { show: false }, stroke: "#777", size: 56 });
    }
    if (plan.rootApart) {
      // the overall line on its own scale, at the right, its ticks in its colour
      axes.push({ scale: "overall", side: 1, values: ticks, grid: { show: false }, stroke: "#000", size: 56,
        label: "overall", labelSize: 16, labelFont: "600 11px system-ui, sans-serif" });
    }
    var range = function (u, min, max) {
      var low = Math.min(0, min === null ? 0 : min);
      var high = max === null || max <= low ? low + 1 : max * 1.06;
      return [low, high];
    };
    var scales = { x: { time: true } };
    scales[mainScale] = { range: plan.percent ? [0, 100] : range };
    if (hasSecond) {
      scales.y2 = { range: range };
    }
    if (plan.rootApart) {
      scales.overall = { range: range };
    }
    return {
      width: this.canvas.clientWidth || 600,
      height: this.options.height,
      tzDate: zoneDate(this.options),
      series: series,
      bands: bands,
      axes: axes,
      scales: scales,
      legend: { show: true, live: true },
      cursor: { focus: { prox: 16 } },
      focus: { alpha: 0.4 }
    };
  };

  // -- entry points ------------------------------------------------------------------------

  /** Draw a live graph in ``element`` (an element, an id, a selector); returns its controller. */
  function graph(target, options) {
    var element = resolveElement(target);
    if (!element) {
      throw new Error("Hailwhale.graph: no element " + target);
    }
    if (element.hailwhale && element.hailwhale.stop) {
      element.hailwhale.stop();
    }
    return new Graph(element, options || {});
  }

  /** Options from an element's data- attributes (data-pk, data-metrics, data-width-factor, ...). */
  function optionsFromData(element) {
    var options = {};
    var given = element.getAttribute("data-hailwhale-graph");
    if (given) {
      var decoded = Core.decodeText(given);
      if (decoded && typeof decoded === "object" && !Array.isArray(decoded)) {
        options = decoded;
      }
    }
    Object.keys(element.dataset).forEach(function (name) {
      if (name !== "hailwhaleGraph" && name.indexOf("hw") !== 0) {
        options[name] = element.dataset[name];
      }
    });
    return options;
  }

  /** Start every <div data-hailwhale-graph ...> not started yet. */
  function autostart(root) {
    var found = (root || document).querySelectorAll("[data-hailwhale-graph]");
    Array.prototype.forEach.call(found, function (element) {
      if (!element.hailwhale) {
        graph(element, optionsFromData(element));
      }
    });
  }

  /** The original's jQuery entry point: $.hailwhale(host).add_graph(target, {...}). */
  function installJQuery($) {
    if (!$ || !$.fn || $.hailwhale) {
      return;
    }
    $.hailwhale = function (host, defaults) {
      var base = String(host || "").replace(/\/+$/, "");
      function merged(extra) {
        var options = {};
        [defaults || {}, extra || {}].forEach(function (given) {
          Object.keys(given).forEach(function (name) {
            options[name] = given[name];
          });
        });
        if (options.host === undefined && options.hwurl === undefined) {
          options.host = base;
        }
        return options;
      }
      return {
        make_params: function (extra) {
          var o = Core.normalizeOptions(merged(extra));
          return { pk: o.pk, dimensions: o.dimensions, metrics: o.metrics, period: o.period, tzoffset: o.tzoffset };
        },
        add_graph: function (target, extra) {
          return graph(target, merged(extra));
        }
      };
    };
  }

  var Hailwhale = window.Hailwhale || {};
  Hailwhale.graph = graph;
  Hailwhale.autostart = autostart;
  Hailwhale.installJQuery = installJQuery;
  Hailwhale.core = Core;
  Hailwhale.base = scriptBase;
  window.Hailwhale = Hailwhale;

  installJQuery(window.jQuery);
  function ready() {
    installJQuery(window.jQuery);
    autostart(document);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }

  // graphs that /graph.js queued while this script was loading
  var queued = window.HailwhaleQueue;
  window.HailwhaleQueue = { push: function (draw) { draw(); } };
  if (queued && queued.length) {
    queued.forEach(function (draw) {
      draw();
    });
  }
})(window, document);

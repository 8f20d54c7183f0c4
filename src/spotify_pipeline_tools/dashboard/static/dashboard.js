/* spotify-pipeline dashboard: renders the embedded JSON (see dashboard/payload.py) with charts.js.
   Everything is inline; the page makes no request. Data values reach the DOM as text only. */
(function () {
  "use strict";

  var DATA = JSON.parse(document.getElementById("dashboard-data").textContent);
  var META = DATA.meta;
  var TRACKS = DATA.tracks;
  var MARKETS = META.markets;
  var MOVES = META.movements;
  var PALETTE = ["#1db954", "#1f77b4", "#d62728", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22"];
  var MAX_CHART_ROWS = 500;
  var MAX_RESULTS = 50;

  var state = { week: META.defaultWeek, market: "", track: null };
  var cache = {};

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (k === "text") { node.textContent = attrs[k]; }
        else if (k === "className") { node.className = attrs[k]; }
        else { node.setAttribute(k, attrs[k]); }
      });
    }
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function td(value, className) {
    return el("td", { text: value === null || value === undefined ? "" : String(value), className: className || "" });
  }

  function fixed(x, digits) { return x === null || x === undefined ? "n/a" : Number(x).toFixed(digits); }

  function duration(ms) {
    if (ms === null || ms === undefined) { return "n/a"; }
    var s = Math.round(ms / 1000);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function spotifyUrl(t) { return "https://open.spotify.com/track/" + encodeURIComponent(TRACKS.id[t]); }

  function label(t) { return TRACKS.name[t] + (TRACKS.artists[t] ? " \u2014 " + TRACKS.artists[t] : ""); }

  function marketIndex() { return state.market === "" ? -1 : MARKETS.indexOf(state.market); }

  function fillBody(table, rows, emptyText, columns) {
    var body = $(table).tBodies[0];
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) { frag.appendChild(r); });
    if (rows.length === 0) {
      var tr = el("tr", { className: "empty" });
      tr.appendChild(el("td", { text: emptyText, colspan: String(columns) }));
      frag.appendChild(tr);
    }
    body.replaceChildren(frag);
  }

  /* Per-week lookups, built once: markets of each track, position of each track's neighbour list. */
  function week() {
    var w = DATA.weeks[state.week];
    if (!cache[state.week]) {
      var markets = {}, recAt = {}, popularity = {};
      w.songs.t.forEach(function (t, i) { markets[t] = w.songs.mk[i]; popularity[t] = w.songs.p[i]; });
      w.recs.t.forEach(function (t, i) { recAt[t] = i; });
      var search = w.songs.t.map(function (t) { return (TRACKS.name[t] + " " + TRACKS.artists[t]).toLowerCase(); });
      cache[state.week] = { markets: markets, recAt: recAt, popularity: popularity, search: search };
    }
    return { data: w, idx: cache[state.week] };
  }

  function inMarket(idx, t) {
    var m = marketIndex();
    return m < 0 || (idx.markets[t] || []).indexOf(m) >= 0;
  }

  function marketNames(idx, t) {
    return (idx.markets[t] || []).map(function (m) { return MARKETS[m]; }).join(", ");
  }

  /* ---- a week whose model was skipped (failed feature gates, too few tracks with features): its
     clusters and recommendations are empty on purpose; say so, with the reason the load recorded ---- */

  function modelNotice(id) {
    var reason = DATA.weeks[state.week].modelSkipped;
    var notice = $(id);
    notice.hidden = !reason;
    notice.replaceChildren(el("strong", { text: "No model for the week of " + state.week + "." }),
      " Clusters and recommendations were not computed; the chart data is loaded. The reason recorded by the load:",
      el("span", { className: "reason", text: reason || "" }));
    return !!reason;
  }

  /* ---- header, banner, provenance ---- */

  /* The newest stored week, on this page or not: --snapshot-date can put an earlier week last. */
  function newestStoredWeek() { return META.storedWeeks[META.storedWeeks.length - 1]; }

  function renderHeader() {
    var w = DATA.weeks[state.week];
    var newest = newestStoredWeek();
    $("subtitle").textContent = "Week of " + state.week +
      (state.week === newest ? " (latest stored)" : " (latest stored week: " + newest + ")") + " \u00b7 " +
      (state.market || "all markets") + " \u00b7 " + MARKETS.length + " markets, " + META.weeks.length +
      " stored week" + (META.weeks.length === 1 ? "" : "s") + " on this page";
    $("synthetic-banner").hidden = !META.synthetic;
    var foot = $("provenance");
    var lines = [
      "Chart source: " + (META.chartSources.join(", ") || "n/a") + ". Audio features: " +
        (META.featureSources.join(", ") || "none") + ". Values from different feature providers are not comparable.",
      "Read from " + META.source.where + " " + META.source.project + "." + META.source.dataset +
        " (the dash_* views) on " + META.generatedAt + "; weeks stored: " + META.storedWeeks.length +
        ", on this page: " + META.weeks.join(", ") + ".",
    ];
    Object.keys(w.provenance).forEach(function (m) {
      var p = w.provenance[m];
      lines.push(m + " " + state.week + ": " + p.entries + " chart entries, " + p.tracks + " tracks (" +
        p.withFeatures + " with audio features), chart source " + p.chartSource + ", features " +
        (p.featureSource || "none") + (p.previous ? ", previous stored week " + p.previous : ", first stored week of " + m) +
        (p.synthetic ? ", " + p.synthetic + " synthetic tracks" : "") + ".");
    });
    lines.push("Model " + state.week + ": " + (w.modelSkipped ? "none, " + w.modelSkipped
      : w.clusters.t.length + " tracks in " + w.centroids.length + " clusters, " + w.recs.t.length + " tracks with neighbours."));
    foot.replaceChildren.apply(foot, lines.map(function (t) { return el("p", { text: t }); }));
  }

  /* ---- scorecards ---- */

  function renderScorecards() {
    var s = DATA.weeks[state.week].summary[state.market || "ALL"] || {};
    var cards = [
      ["Tracks", s.tracks], ["Artists", s.artists], ["Genres", s.genres],
      ["Avg danceability", fixed(s.danceability, 3)], ["Avg energy", fixed(s.energy, 3)],
      ["Avg duration", duration(s.durationMs)], ["Avg popularity", fixed(s.popularity, 1)],
      ["Explicit", s.explicitShare === null || s.explicitShare === undefined ? "n/a" : Math.round(s.explicitShare * 100) + "%"],
    ];
    $("scorecards").replaceChildren.apply($("scorecards"), cards.map(function (c) {
      return el("div", { className: "card", "data-card": c[0] }, [
        el("div", { className: "label", text: c[0] }),
        el("div", { className: "value", text: c[1] === undefined || c[1] === null ? "n/a" : String(c[1]) }),
      ]);
    }));
  }

  /* ---- charts (charts.js: inline SVG, one element of class "mark" per point or bar) ---- */

  function renderPopularity() {
    var p = DATA.weeks[state.week].points;
    var only = marketIndex();
    var series = MARKETS.map(function (name, m) {
      return { name: name, color: PALETTE[m % PALETTE.length], x: [], y: [], t: [], r: [] };
    });
    for (var i = 0; i < p.m.length; i++) {
      if ((only >= 0 && p.m[i] !== only) || p.p[i] === null || p.d[i] === null) { continue; }
      var s = series[p.m[i]];
      s.x.push(p.d[i]); s.y.push(p.p[i]); s.t.push(p.t[i]); s.r.push(p.r[i]);
    }
    series = series.filter(function (s) { return s.x.length > 0; });
    Charts.scatter($("chart-popularity"), {
      key: "popularity:" + state.market, series: series, xTitle: "danceability", yTitle: "popularity",
      tip: function (si, i) {
        var s = series[si];
        return label(s.t[i]) + "\n" + s.name + " #" + s.r[i] + " \u00b7 danceability " + s.x[i] + " \u00b7 popularity " + s.y[i];
      },
      pick: function (si, i) { selectTrack(series[si].t[i]); },
    });
  }

  function renderTopSongs() {
    var scope = state.market || "ALL";
    var rows = DATA.weeks[state.week].top[scope] || [];
    $("top-songs-hint").textContent = "The " + META.topSongs + " most popular songs of " +
      (state.market || "all markets") + ", each song once, never summed over markets (view dash_top_songs).";
    Charts.barh($("chart-top-songs"), {
      key: "top", labels: rows.map(function (r, i) { return (i + 1) + ". " + TRACKS.name[r[0]]; }),
      values: rows.map(function (r) { return r[1]; }), domain: [0, 100], xTitle: "popularity", color: "#1db954",
      tip: function (si, i) { return label(rows[i][0]) + "\npopularity " + rows[i][1] + " \u00b7 best chart rank #" + rows[i][2]; },
      pick: function (si, i) { selectTrack(rows[i][0]); },
    });
  }

  function renderClusters() {
    var skipped = modelNotice("clusters-skipped");
    $("chart-clusters").hidden = skipped;
    if (skipped) { return; }
    var wk = week(), c = wk.data.clusters;
    var byCluster = {};
    for (var i = 0; i < c.t.length; i++) {
      if (!inMarket(wk.idx, c.t[i])) { continue; }
      var s = byCluster[c.c[i]];
      if (!s) {
        s = byCluster[c.c[i]] = { name: "cluster " + c.c[i], color: PALETTE[(c.c[i] + 3) % PALETTE.length],
          x: [], y: [], t: [], dist: [] };
      }
      s.x.push(c.d[i]); s.y.push(c.e[i]); s.t.push(c.t[i]); s.dist.push(c.x[i]);
    }
    var series = Object.keys(byCluster).sort(function (a, b) { return a - b; }).map(function (k) { return byCluster[k]; });
    var cents = wk.data.centroids;
    Charts.scatter($("chart-clusters"), {
      key: "clusters", series: series, xTitle: "danceability", yTitle: "energy",
      extra: cents.length ? { name: "centroid of each cluster", x: cents.map(function (r) { return r[2]; }),
        y: cents.map(function (r) { return r[3]; }) } : null,
      tip: function (si, i) {
        if (si === "extra") { return "cluster " + cents[i][0] + " centroid: " + cents[i][1] + " tracks"; }
        var s = series[si];
        return label(s.t[i]) + "\n" + s.name + " \u00b7 danceability " + s.x[i] + " \u00b7 energy " + s.y[i] +
          " \u00b7 distance to centroid " + fixed(s.dist[i], 3);
      },
      pick: function (si, i) { if (si !== "extra") { selectTrack(series[si].t[i]); } },
    });
  }

  function renderMarkets() {
    var s = DATA.weeks[state.week].summary;
    var shown = MARKETS.filter(function (m) { return s[m]; });
    var features = [["danceability", "#1db954"], ["energy", "#1f77b4"], ["valence", "#ff7f0e"]];
    var series = features.map(function (f) {
      return { name: "avg " + f[0], color: f[1], values: shown.map(function (m) { return s[m][f[0]]; }) };
    });
    Charts.grouped($("chart-markets"), {
      key: "markets", categories: shown, series: series, domain: [0, 1], yTitle: "average (0-1)",
      tip: function (si, i) { return shown[i] + ": " + series[si].name + " " + fixed(series[si].values[i], 3); },
    });
  }

  /* ---- tables ---- */

  function renderGenres() {
    var scope = state.market || "ALL";
    var rows = DATA.weeks[state.week].genres[scope] || [];
    $("genres-hint").textContent = "Genres of the credited artists of " + (state.market || "all markets") +
      "' tracks, top " + META.topGenres + " by tracks (view dash_genres).";
    fillBody("table-genres", rows.map(function (g, i) {
      return el("tr", {}, [td(i + 1, "num"), td(g[0]), td(g[1], "num"),
        td(g[4] === null ? "" : Math.round(g[4] * 100) + "%", "num"), td(g[2], "num"), td(g[3], "num")]);
    }), "No genres for this market and week.", 6);
  }

  function moveText(mv, change) {
    var kind = MOVES[mv];
    if (kind === "up") { return ["\u25b2" + change, "up"]; }
    if (kind === "down") { return ["\u25bc" + (-change), "down"]; }
    if (kind === "new") { return ["NEW", "new"]; }
    if (kind === "same") { return ["=", ""]; }
    return ["", ""];
  }

  /* Each market is compared with its own previous stored week (w.previous: null for the market's first
     stored week), so "first stored week" is said of the page's week only when no market has an earlier one. */
  function movementSummary(w, counts) {
    var scope = (state.market ? [state.market] : MARKETS).filter(function (m) {
      return Object.prototype.hasOwnProperty.call(w.previous, m);  // the markets charting this week
    });
    if (scope.length === 0) {
      return "No chart of " + (state.market || "any market") + " is stored for the week of " + state.week + ".";
    }
    var fresh = scope.filter(function (m) { return !w.previous[m]; }).join(", ");
    if (scope.every(function (m) { return !w.previous[m]; })) {
      return state.week === META.storedWeeks[0]
        ? "No earlier stored week to compare with (" + state.week + " is the first stored week)."
        : "No earlier stored week of " + fresh + " to compare with (" + state.week + " is the first stored week of " +
          fresh + "; earlier weeks are stored for other markets).";
    }
    var prev = scope.map(function (m) { return m + ": " + (w.previous[m] || "none, its first stored week"); });
    var noHistory = counts.no_history || 0;
    return "Against each market's previous stored week (" + prev.join(", ") + "): " + (counts["new"] || 0) + " new, " +
      (counts.up || 0) + " up, " + (counts.down || 0) + " down, " + (counts.same || 0) + " unchanged, " +
      (counts.dropped || 0) + " dropped out" + (noHistory ? "; " + noHistory + " entries of " + fresh + " not compared" : "") +
      " (view dash_weekly_movement).";
  }

  function renderMovement() {
    var w = DATA.weeks[state.week], mv = w.moves, only = marketIndex();
    var news = [], ups = [], drops = [], chart = [], counts = {};
    for (var i = 0; i < mv.m.length; i++) {
      if (only >= 0 && mv.m[i] !== only) { continue; }
      var kind = MOVES[mv.mv[i]];
      counts[kind] = (counts[kind] || 0) + 1;
      var row = { m: MARKETS[mv.m[i]], t: mv.t[i], r: mv.r[i], pr: mv.pr[i], mv: mv.mv[i] };
      if (kind === "new") { news.push(row); }
      if (kind === "up") { ups.push(row); }
      if (kind === "dropped") { drops.push(row); } else { chart.push(row); }
    }
    ups.sort(function (a, b) { return (b.pr - b.r) - (a.pr - a.r) || a.r - b.r || a.m.localeCompare(b.m); });
    drops.sort(function (a, b) { return a.pr - b.pr || a.m.localeCompare(b.m); });
    $("movement-summary").textContent = movementSummary(w, counts);
    fillBody("table-new", news.map(function (r) {
      return el("tr", { "data-track-id": TRACKS.id[r.t] }, [td(r.m), td(r.r, "num"), td(TRACKS.name[r.t]), td(TRACKS.artists[r.t])]);
    }), "No new entries.", 4);
    fillBody("table-climbers", ups.map(function (r) {
      return el("tr", { "data-track-id": TRACKS.id[r.t] }, [td(r.m), td(r.r, "num"), td(r.pr, "num"),
        td("\u25b2" + (r.pr - r.r), "num up"), td(label(r.t))]);
    }), "No climbers.", 5);
    fillBody("table-dropped", drops.map(function (r) {
      return el("tr", { "data-track-id": TRACKS.id[r.t] }, [td(r.m), td(r.pr, "num"), td(TRACKS.name[r.t]), td(TRACKS.artists[r.t])]);
    }), "No drop-outs.", 4);
    $("chart-table-hint").textContent = "The week's chart" + (state.market ? " of " + state.market : "s of every market") +
      " with the move since the previous stored week" +
      (chart.length > MAX_CHART_ROWS ? "; the first " + MAX_CHART_ROWS + " of " + chart.length + " entries (pick a market)" : "") + ".";
    fillBody("table-chart", chart.slice(0, MAX_CHART_ROWS).map(function (r) {
      var mt = moveText(r.mv, r.pr - r.r);
      return el("tr", { "data-track-id": TRACKS.id[r.t] }, [td(r.m), td(r.r, "num"), td(mt[0], mt[1]),
        td(TRACKS.name[r.t]), td(TRACKS.artists[r.t])]);
    }), "No chart entries.", 5);
  }

  /* ---- explorer ---- */

  function neighboursOf(t) {
    var wk = week(), recs = wk.data.recs, i = wk.idx.recAt[t];
    if (i === undefined) { return null; }
    var out = [];
    for (var j = recs.o[i]; j < recs.o[i + 1]; j++) {
      out.push({ t: recs.n[j], d: recs.d[j], x: recs.x.charAt(j) === "1", rank: recs.r ? recs.r[j] : j - recs.o[i] + 1 });
    }
    return out;
  }

  function renderSearch() {
    var wk = week(), q = $("explorer-search").value.trim().toLowerCase();
    var words = q ? q.split(/\s+/) : [];
    var found = [];
    // The query as a phrase ("synthetic artist 04"), else every word somewhere in title or artists.
    [function (hay) { return hay.indexOf(q) >= 0; },
      function (hay) { return words.every(function (w) { return hay.indexOf(w) >= 0; }); }].forEach(function (match) {
      if (!q || found.length) { return; }
      for (var i = 0; i < wk.data.songs.t.length && found.length < MAX_RESULTS; i++) {
        if (match(wk.idx.search[i])) { found.push(wk.data.songs.t[i]); }
      }
    });
    $("explorer-results").replaceChildren.apply($("explorer-results"), found.map(function (t) {
      var b = el("button", { type: "button", "data-track-id": TRACKS.id[t], text: label(t) + " \u00b7 " + marketNames(wk.idx, t) });
      b.addEventListener("click", function () { selectTrack(t); });
      return el("li", {}, [b]);
    }));
  }

  function selectTrack(t) {
    state.track = t;
    $("explorer-search").value = "";
    $("explorer-results").replaceChildren();
    renderExplorer();
  }

  function renderExplorer() {
    var wk = week(), skipped = modelNotice("explorer-skipped");
    if (state.track === null || wk.idx.markets[state.track] === undefined) {
      state.track = wk.data.songs.t.length ? wk.data.songs.t[0] : null;  // the week's most popular song
    }
    var sel = $("explorer-selected"), t = state.track;
    if (t === null) {
      sel.textContent = "No songs this week.";
      fillBody("explorer-neighbours", [], "No songs.", 7);
      return;
    }
    var link = el("a", { href: spotifyUrl(t), target: "_blank", rel: "noopener noreferrer", text: "open in Spotify" });
    sel.replaceChildren(el("strong", { text: TRACKS.name[t] }), " \u2014 " + TRACKS.artists[t] + " \u00b7 charts in " +
      marketNames(wk.idx, t) + " \u00b7 popularity " + (wk.idx.popularity[t] === null ? "n/a" : wk.idx.popularity[t]) + " \u00b7 ", link);
    sel.setAttribute("data-track-id", TRACKS.id[t]);
    var all = neighboursOf(t);
    var note = $("explorer-note"), byMarket = $("explorer-by-market");
    if (all === null) {
      note.textContent = skipped ? "No song has neighbours this week: the model was skipped."
        : "This song has no audio features, so it was not modelled and has no neighbours.";
      byMarket.replaceChildren();
      fillBody("explorer-neighbours", [], skipped ? "No neighbours: the model was skipped this week." : "No neighbours.", 7);
      return;
    }
    var chips = [], without = [];
    MARKETS.forEach(function (m, mi) {
      var best = null;
      for (var k = 0; k < all.length && best === null; k++) {
        if ((wk.idx.markets[all[k].t] || []).indexOf(mi) >= 0) { best = all[k]; }
      }
      if (best) {
        chips.push(el("li", { "data-market": m, text: "Nearest in " + m + ": #" + best.rank + " " + label(best.t) +
          " (" + fixed(best.d, 3) + ")" }));
      } else {
        without.push(m);
      }
    });
    if (without.length) {
      chips.push(el("li", { className: "none", text: "None among the " + all.length + " nearest in " + without.join(", ") }));
    }
    byMarket.replaceChildren.apply(byMarket, chips);
    var shown = all.filter(function (n) { return inMarket(wk.idx, n.t); });
    note.textContent = "The " + all.length + " nearest of " + META.storedNeighbours + " stored neighbours, ranked as in the warehouse" +
      (state.market ? "; " + shown.length + " of them chart in " + state.market : "") + ".";
    fillBody("explorer-neighbours", shown.map(function (n) {
      return el("tr", { "data-track-id": TRACKS.id[n.t], "data-rank": String(n.rank) }, [
        td(n.rank, "num"), td(TRACKS.name[n.t]), td(TRACKS.artists[n.t]), td(marketNames(wk.idx, n.t)),
        td(fixed(n.d, 3), "num"), td(n.x ? "\u2713 cross-market" : ""),
        el("td", {}, [el("a", { href: spotifyUrl(n.t), target: "_blank", rel: "noopener noreferrer", text: "open \u2197" })]),
      ]);
    }), state.market ? "None of the nearest songs charts in " + state.market + "." : "No neighbours.", 7);
  }

  /* ---- wiring ---- */

  function renderAll() {
    renderHeader();
    renderScorecards();
    renderPopularity();
    renderTopSongs();
    renderClusters();
    renderMarkets();
    renderGenres();
    renderMovement();
    renderExplorer();
  }

  function options(select, items) {
    select.replaceChildren.apply(select, items.map(function (it) { return el("option", { value: it[0], text: it[1] }); }));
  }

  function init() {
    var newest = newestStoredWeek();
    options($("snapshot-select"), META.weeks.slice().reverse().map(function (w) {
      return [w, w + (w === newest ? " (latest)" : "")];
    }));
    $("snapshot-select").value = state.week;
    options($("market-filter"), [["", "All markets"]].concat(MARKETS.map(function (m) { return [m, m]; })));
    $("snapshot-select").addEventListener("change", function (e) { state.week = e.target.value; rerender(); });
    $("market-filter").addEventListener("change", function (e) { state.market = e.target.value; rerender(); });
    $("explorer-search").addEventListener("input", renderSearch);
    $("explorer-search").addEventListener("keydown", function (e) {
      var first = $("explorer-results").querySelector("button");
      if (e.key === "Enter" && first) { first.click(); }
    });
    renderAll();
  }

  function rerender() {
    document.body.removeAttribute("data-ready");
    renderAll();
    document.body.setAttribute("data-ready", "true");
  }

  init();
  window.dashboardReadyAt = performance.now();  // everything drawn and wired: the page is interactive
  document.body.setAttribute("data-ready", "true");
})();

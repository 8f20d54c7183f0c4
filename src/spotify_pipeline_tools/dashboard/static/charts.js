/* Minimal SVG charts for the dashboard: scatter, horizontal bars, grouped bars.
   Every mark is one SVG element of class "mark" (countable by the browser tests); data text never
   enters the markup unescaped: tooltips are looked up by series and index on hover. */
var Charts = (function () {
  "use strict";

  var HEIGHT = 360;
  var MAX_LABEL_CHARS = 40;  // longest bar label shown, ellipsis included (docs/dashboard.md)
  var tooltip = null;

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }

  function truncate(label, max) {
    var chars = Array.from(label);
    return chars.length > max ? chars.slice(0, max - 1).join("") + "\u2026" : label;
  }

  function niceStep(span, count) {
    var raw = span / count, step = Math.pow(10, Math.floor(Math.log10(raw))), err = raw / step;
    if (err >= 7.5) { step *= 10; } else if (err >= 3.5) { step *= 5; } else if (err >= 1.5) { step *= 2; }
    return step;
  }

  /* [lo, hi, step] covering the values, padded and rounded to whole ticks. */
  function domain(values, fixed, count) {
    if (fixed) { return [fixed[0], fixed[1], niceStep(fixed[1] - fixed[0], count)]; }
    var lo = Infinity, hi = -Infinity;
    values.forEach(function (v) { if (v < lo) { lo = v; } if (v > hi) { hi = v; } });
    if (lo === Infinity) { lo = 0; hi = 1; }
    if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
    var pad = (hi - lo) * 0.04;
    var step = niceStep(hi - lo + 2 * pad, count);
    return [Math.floor((lo - pad) / step) * step, Math.ceil((hi + pad) / step) * step, step];
  }

  function tickValues(d) {
    var out = [];
    for (var v = d[0]; v <= d[1] + d[2] * 1e-6; v += d[2]) { out.push(+v.toFixed(10)); }
    return out;
  }

  function tickText(v, step) {
    var decimals = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step)));
    return v.toFixed(decimals);
  }

  function width(el) { return Math.max(320, el.clientWidth || 640); }

  function axes(parts, box, xd, yd, xTitle, yTitle, sx, sy) {
    tickValues(xd).forEach(function (v) {
      var x = sx(v).toFixed(1);
      parts.push('<line class="grid" x1="' + x + '" x2="' + x + '" y1="' + box.t + '" y2="' + (box.h - box.b) + '"/>');
      parts.push('<text class="tick" x="' + x + '" y="' + (box.h - box.b + 16) + '" text-anchor="middle">' + tickText(v, xd[2]) + "</text>");
    });
    tickValues(yd).forEach(function (v) {
      var y = sy(v).toFixed(1);
      parts.push('<line class="grid" x1="' + box.l + '" x2="' + (box.w - box.r) + '" y1="' + y + '" y2="' + y + '"/>');
      parts.push('<text class="tick" x="' + (box.l - 6) + '" y="' + y + '" dy="0.32em" text-anchor="end">' + tickText(v, yd[2]) + "</text>");
    });
    parts.push('<text class="axis-title" x="' + ((box.l + box.w - box.r) / 2) + '" y="' + (box.h - 6) + '" text-anchor="middle">' + esc(xTitle) + "</text>");
    parts.push('<text class="axis-title" transform="translate(14,' + ((box.t + box.h - box.b) / 2) + ') rotate(-90)" text-anchor="middle">' + esc(yTitle) + "</text>");
  }

  function legend(series, hidden) {
    return '<div class="legend">' + series.map(function (s, i) {
      return '<button type="button" class="legend-item' + (hidden[i] ? " off" : "") + '" data-s="' + i + '"><i style="background:' +
        s.color + '"></i>' + esc(s.name) + "</button>";
    }).join("") + "</div>";
  }

  function ensureTooltip() {
    if (!tooltip) {
      tooltip = document.createElement("div");
      tooltip.className = "chart-tooltip";
      tooltip.hidden = true;
      document.body.appendChild(tooltip);
    }
    return tooltip;
  }

  /* Hover, click and legend toggles, wired once per container; the current spec is read at event time. */
  function wire(el) {
    if (el.__wired) { return; }
    el.__wired = true;
    el.addEventListener("mouseover", function (e) {
      var mark = e.target.closest ? e.target.closest(".mark") : null;
      var c = el.__chart;
      if (!mark || !c || !c.tip) { return; }
      var tip = ensureTooltip();
      tip.textContent = c.tip(mark.getAttribute("data-s"), +mark.getAttribute("data-i"));
      tip.hidden = false;
      tip.style.left = (e.pageX + 12) + "px";
      tip.style.top = (e.pageY + 12) + "px";
    });
    el.addEventListener("mouseout", function (e) {
      if (e.target.classList && e.target.classList.contains("mark") && tooltip) { tooltip.hidden = true; }
    });
    el.addEventListener("click", function (e) {
      var c = el.__chart;
      var item = e.target.closest ? e.target.closest(".legend-item") : null;
      if (item && c) {
        var s = +item.getAttribute("data-s");
        c.hidden[s] = !c.hidden[s];
        c.draw();
        return;
      }
      var mark = e.target.closest ? e.target.closest(".mark") : null;
      if (mark && c && c.pick) { c.pick(mark.getAttribute("data-s"), +mark.getAttribute("data-i")); }
    });
  }

  function mount(el, draw, spec) {
    var hidden = el.__chart && el.__chart.key === spec.key ? el.__chart.hidden : {};
    el.__chart = { draw: function () { draw(el, spec, el.__chart.hidden); }, hidden: hidden, tip: spec.tip, pick: spec.pick, key: spec.key };
    wire(el);
    el.__chart.draw();
  }

  /* spec: {series: [{name, color, x, y}], extra: {name, x, y} | null (drawn as crosses), xTitle, yTitle,
     tip(series, i), pick(series, i), key} ; points with a null coordinate are not drawn. */
  function drawScatter(el, spec, hidden) {
    var box = { w: width(el), h: HEIGHT, l: 52, r: 14, t: 10, b: 44 };
    var xs = [], ys = [];
    spec.series.forEach(function (s, si) {
      if (hidden[si]) { return; }
      for (var i = 0; i < s.x.length; i++) { if (s.x[i] !== null && s.y[i] !== null) { xs.push(s.x[i]); ys.push(s.y[i]); } }
    });
    if (spec.extra) { xs = xs.concat(spec.extra.x); ys = ys.concat(spec.extra.y); }
    var xd = domain(xs, spec.xDomain, 6), yd = domain(ys, spec.yDomain, 5);
    var sx = function (v) { return box.l + (v - xd[0]) / (xd[1] - xd[0]) * (box.w - box.l - box.r); };
    var sy = function (v) { return box.h - box.b - (v - yd[0]) / (yd[1] - yd[0]) * (box.h - box.t - box.b); };
    var parts = ['<svg class="chart-svg" width="' + box.w + '" height="' + box.h + '" viewBox="0 0 ' + box.w + " " + box.h + '">'];
    axes(parts, box, xd, yd, spec.xTitle, spec.yTitle, sx, sy);
    spec.series.forEach(function (s, si) {
      if (hidden[si]) { return; }
      for (var i = 0; i < s.x.length; i++) {
        if (s.x[i] === null || s.y[i] === null) { continue; }
        parts.push('<circle class="mark" data-s="' + si + '" data-i="' + i + '" cx="' + sx(s.x[i]).toFixed(1) + '" cy="' +
          sy(s.y[i]).toFixed(1) + '" r="3.6" fill="' + s.color + '"/>');
      }
    });
    if (spec.extra) {
      for (var j = 0; j < spec.extra.x.length; j++) {
        var cx = sx(spec.extra.x[j]), cy = sy(spec.extra.y[j]);
        parts.push('<path class="mark centroid" data-s="extra" data-i="' + j + '" d="M' + (cx - 6).toFixed(1) + " " + (cy - 6).toFixed(1) +
          "L" + (cx + 6).toFixed(1) + " " + (cy + 6).toFixed(1) + "M" + (cx - 6).toFixed(1) + " " + (cy + 6).toFixed(1) + "L" +
          (cx + 6).toFixed(1) + " " + (cy - 6).toFixed(1) + '"/>');
      }
    }
    parts.push("</svg>");
    var series = spec.series.slice();
    el.innerHTML = parts.join("") + legend(series, hidden) + (spec.extra ? '<div class="legend-note">\u2715 ' + esc(spec.extra.name) + "</div>" : "");
  }

  /* spec: {labels, values, domain: [lo, hi], xTitle, color, tip(i), key}; bars top to bottom in order. */
  function drawBarH(el, spec) {
    var rowH = 22, box = { w: width(el), l: Math.min(300, Math.round(width(el) * 0.45)), r: 30, t: 6, b: 44 };
    box.h = Math.max(120, box.t + box.b + rowH * spec.labels.length);
    var xd = domain([], spec.domain, 5);
    var sx = function (v) { return box.l + (v - xd[0]) / (xd[1] - xd[0]) * (box.w - box.l - box.r); };
    var parts = ['<svg class="chart-svg" width="' + box.w + '" height="' + box.h + '" viewBox="0 0 ' + box.w + " " + box.h + '">'];
    tickValues(xd).forEach(function (v) {
      var x = sx(v).toFixed(1);
      parts.push('<line class="grid" x1="' + x + '" x2="' + x + '" y1="' + box.t + '" y2="' + (box.h - box.b) + '"/>');
      parts.push('<text class="tick" x="' + x + '" y="' + (box.h - box.b + 16) + '" text-anchor="middle">' + tickText(v, xd[2]) + "</text>");
    });
    parts.push('<text class="axis-title" x="' + ((box.l + box.w - box.r) / 2) + '" y="' + (box.h - 6) + '" text-anchor="middle">' + esc(spec.xTitle) + "</text>");
    var maxChars = Math.min(MAX_LABEL_CHARS, Math.max(8, Math.floor((box.l - 10) / 6.2)));
    spec.labels.forEach(function (label, i) {
      var y = box.t + i * rowH, v = spec.values[i];
      // The full label on hover (<title>); the shown one cut to maxChars characters (code points, so no
      // emoji or astral character is split), the last one an ellipsis.
      parts.push('<text class="bar-label" x="' + (box.l - 6) + '" y="' + (y + rowH / 2) + '" dy="0.32em" text-anchor="end">' +
        "<title>" + esc(label) + "</title>" + esc(truncate(label, maxChars)) + "</text>");
      if (v === null || v === undefined) { return; }
      parts.push('<rect class="mark" data-s="0" data-i="' + i + '" x="' + box.l + '" y="' + (y + 3) + '" width="' +
        Math.max(0, sx(v) - box.l).toFixed(1) + '" height="' + (rowH - 6) + '" fill="' + spec.color + '"/>');
      parts.push('<text class="bar-value" x="' + (sx(v) + 4).toFixed(1) + '" y="' + (y + rowH / 2) + '" dy="0.32em">' + esc(v) + "</text>");
    });
    parts.push("</svg>");
    el.innerHTML = spec.labels.length ? parts.join("") : '<p class="chart-empty">No data.</p>';
  }

  /* spec: {categories, series: [{name, color, values}], domain, yTitle, tip(series, i), key} */
  function drawGrouped(el, spec, hidden) {
    var w = width(el), band0 = (w - 66) / Math.max(1, spec.categories.length), rotate = band0 < 34;
    var box = { w: w, h: HEIGHT + (rotate ? 24 : 0), l: 52, r: 14, t: 10, b: rotate ? 68 : 44 };
    var yd = domain([], spec.domain, 5);
    var sy = function (v) { return box.h - box.b - (v - yd[0]) / (yd[1] - yd[0]) * (box.h - box.t - box.b); };
    var parts = ['<svg class="chart-svg" width="' + box.w + '" height="' + box.h + '" viewBox="0 0 ' + box.w + " " + box.h + '">'];
    tickValues(yd).forEach(function (v) {
      var y = sy(v).toFixed(1);
      parts.push('<line class="grid" x1="' + box.l + '" x2="' + (box.w - box.r) + '" y1="' + y + '" y2="' + y + '"/>');
      parts.push('<text class="tick" x="' + (box.l - 6) + '" y="' + y + '" dy="0.32em" text-anchor="end">' + tickText(v, yd[2]) + "</text>");
    });
    parts.push('<text class="axis-title" transform="translate(14,' + ((box.t + box.h - box.b) / 2) + ') rotate(-90)" text-anchor="middle">' + esc(spec.yTitle) + "</text>");
    var shown = spec.series.map(function (s, i) { return i; }).filter(function (i) { return !hidden[i]; });
    var band = (box.w - box.l - box.r) / Math.max(1, spec.categories.length);
    var barW = band * 0.8 / Math.max(1, shown.length);
    spec.categories.forEach(function (cat, ci) {
      var x0 = box.l + ci * band + band * 0.1, xc = (box.l + ci * band + band / 2).toFixed(1), y = box.h - box.b + 10;
      parts.push(rotate
        ? '<text class="tick" style="font-size:9px" transform="translate(' + xc + "," + y + ') rotate(-90)" dy="0.32em" text-anchor="end">' + esc(cat) + "</text>"
        : '<text class="tick" x="' + xc + '" y="' + (y + 6) + '" text-anchor="middle">' + esc(cat) + "</text>");
      shown.forEach(function (si, k) {
        var v = spec.series[si].values[ci];
        if (v === null || v === undefined) { return; }
        var y = sy(v);
        parts.push('<rect class="mark" data-s="' + si + '" data-i="' + ci + '" x="' + (x0 + k * barW).toFixed(1) + '" y="' + y.toFixed(1) +
          '" width="' + Math.max(1, barW - 1).toFixed(1) + '" height="' + Math.max(0, box.h - box.b - y).toFixed(1) + '" fill="' +
          spec.series[si].color + '"/>');
      });
    });
    parts.push("</svg>");
    el.innerHTML = parts.join("") + legend(spec.series, hidden);
  }

  var redraw = [];
  var timer = null;
  window.addEventListener("resize", function () {
    clearTimeout(timer);
    timer = setTimeout(function () {
      redraw.forEach(function (el) { if (el.__chart) { el.__chart.draw(); } });
    }, 150);
  });

  function register(el) { if (redraw.indexOf(el) < 0) { redraw.push(el); } }

  return {
    scatter: function (el, spec) { register(el); mount(el, drawScatter, spec); },
    barh: function (el, spec) { register(el); mount(el, function (e, s) { drawBarH(e, s); }, spec); },
    grouped: function (el, spec) { register(el); mount(el, drawGrouped, spec); },
    esc: esc,
  };
})();

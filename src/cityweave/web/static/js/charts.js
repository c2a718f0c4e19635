// Charts from data-* attributes (the CSP allows no inline script): every <canvas data-chart="{...}">
// becomes a Chart.js chart. The table or text next to each chart carries the same figures.
(function () {
  "use strict";
  var COLOURS = ["#0b5cad", "#1b5e20", "#b00020", "#8a6d00", "#6a1b9a", "#c2410c"];

  function label(value, lang) {
    if (typeof value === "string" && /^\d{4}-\d{2}-\d{2}T/.test(value)) {
      var date = new Date(value);
      return date.toLocaleTimeString(lang, {hour: "2-digit", minute: "2-digit"});
    }
    return value;
  }

  function draw(canvas) {
    if (!window.Chart) { return; }
    var spec;
    try { spec = JSON.parse(canvas.getAttribute("data-chart")); } catch (e) { return; }
    var names = {};
    try { names = JSON.parse(canvas.getAttribute("data-series-names") || "{}"); } catch (e) { names = {}; }
    var lang = document.documentElement.lang || "zh-CN";
    var large = document.body.classList.contains("large") || document.body.classList.contains("tv");
    window.Chart.defaults.font.size = large ? 18 : 13;
    new window.Chart(canvas, {
      type: spec.type || "line",
      data: {
        labels: (spec.labels || []).map(function (v) { return label(v, lang); }),
        datasets: (spec.datasets || []).map(function (set, i) {
          return {label: names[set.label] || set.label, data: set.data, borderColor: COLOURS[i % COLOURS.length],
                  backgroundColor: COLOURS[i % COLOURS.length], spanGaps: true, pointRadius: 0, borderWidth: 2};
        })
      },
      options: {responsive: true, maintainAspectRatio: false, animation: false,
                plugins: {legend: {position: "bottom"}}, scales: {y: {beginAtZero: spec.type === "bar"}}}
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("canvas[data-chart]"), draw);
  });
})();

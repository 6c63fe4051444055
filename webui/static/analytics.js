// Draws the charts of the analytics pages with Chart.js (served from /vendor, never a CDN).
// Each <figure data-chart> carries its data as JSON (webui/analytics.py, _chart): labels,
// datasets with a colour name, the kind of their axis (count, days, money, share) and an
// optional "line" type on a bar chart. The table under the charts holds the same figures,
// so a page without JavaScript loses nothing but the pictures.
(function () {
  "use strict";
  var COLORS = {
    accent: "#2f5bea", late: "#c62828", ok: "#1b7f4b", risk: "#d08a00",
    muted: "#9aa3b5", pale: "#cdd5ea", ink: "#1d2433"
  };
  var messages = JSON.parse(document.getElementById("analytics-messages").textContent);
  var locale = document.documentElement.lang || "en";
  var numbers = new Intl.NumberFormat(locale, { maximumFractionDigits: 1 });
  var percents = new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 });

  function format(axis, value) {
    if (value === null || value === undefined) {
      return "—";
    }
    return axis === "share" ? percents.format(value) : numbers.format(value);
  }

  function say(figure, text) {
    var note = document.createElement("p");
    note.className = "muted an-chart-note";
    note.textContent = text;
    figure.querySelector(".an-canvas").replaceWith(note);
  }

  function draw(figure) {
    var spec = JSON.parse(figure.querySelector(".an-chart-spec").textContent);
    var options = spec.options || {};
    if (typeof window.Chart !== "function") {
      say(figure, messages.missing);
      return;
    }
    if (!spec.labels.length) {
      say(figure, messages.empty);
      figure.setAttribute("data-rendered", "empty");
      return;
    }
    var horizontal = Boolean(options.horizontal);
    var valueAxis = horizontal ? "x" : "y";
    var categoryAxis = horizontal ? "y" : "x";
    var axisKinds = spec.datasets.map(function (set) { return set.axis; });
    var mainKind = axisKinds.filter(function (kind) { return kind !== "share"; })[0] || "share";
    // Shares beside counts (the Pareto's cumulative line) get an axis of their own, 0-100 %.
    var shareAxis = mainKind !== "share" && axisKinds.indexOf("share") >= 0;

    var datasets = spec.datasets.map(function (set) {
      var color = COLORS[set.color] || COLORS.accent;
      var line = set.type === "line";
      var dataset = {
        label: set.label, data: set.data, type: set.type || spec.type, axisKind: set.axis,
        backgroundColor: line ? color : color + (set.color === "pale" ? "" : "d9"), borderColor: color,
        borderWidth: line ? 2 : 0, pointRadius: line ? 3 : 0, tension: 0.2, order: line ? 0 : 1
      };
      dataset[valueAxis + "AxisID"] = shareAxis && set.axis === "share" ? "share" : valueAxis;
      return dataset;
    });

    var scales = {};
    scales[categoryAxis] = { stacked: Boolean(options.stacked), grid: { display: false } };
    scales[valueAxis] = {
      beginAtZero: true, stacked: Boolean(options.stacked),
      ticks: { callback: function (value) { return format(mainKind, value); } }
    };
    if (mainKind === "share") {
      scales[valueAxis].max = 1;
    }
    if (shareAxis) {
      scales.share = {
        axis: valueAxis, position: horizontal ? "top" : "right", min: 0, max: 1, grid: { drawOnChartArea: false },
        ticks: { callback: function (value) { return percents.format(value); } }
      };
    }

    new window.Chart(figure.querySelector("canvas"), {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        indexAxis: horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: scales,
        plugins: {
          legend: { position: "bottom", display: datasets.length > 1 },
          tooltip: {
            callbacks: {
              label: function (context) {
                return context.dataset.label + ": " + format(context.dataset.axisKind, context.raw);
              }
            }
          }
        }
      }
    });
    figure.setAttribute("data-rendered", "true");
  }

  document.querySelectorAll("figure[data-chart]").forEach(draw);
})();

// The overdue heatmap: the process's diagram (bpmn-js, from /vendor) with each task
// coloured by how much of its open work is overdue, a badge with its figures, and a click
// that lists its items. The figures come as JSON from webui/analytics.py (heatmap);
// diagram.js (loaded before) renders the diagram.
(function () {
  "use strict";
  function show(container) {
    var heat = JSON.parse(container.querySelector(".heatmap-data").textContent);
    window.crmflowRenderDiagram(container, function (viewer) {
      var canvas = viewer.get("canvas");
      var registry = viewer.get("elementRegistry");
      var overlays = viewer.get("overlays");
      // As tall as the diagram is at the page's width (within reason), so that it fills the
      // frame instead of floating in a fixed-height box.
      var inner = canvas.viewbox().inner;
      if (inner.width > 0) {
        var height = container.clientWidth * inner.height / inner.width + 60;
        container.style.height = Math.round(Math.max(260, Math.min(640, height))) + "px";
        canvas.resized();
      }
      canvas.zoom("fit-viewport");
      Object.keys(heat).forEach(function (id) {
        if (!registry.get(id)) {
          return;
        }
        var task = heat[id];
        canvas.addMarker(id, "heat-" + task.severity);
        var badge = document.createElement("a");
        badge.className = "heat-badge heat-" + task.severity;
        badge.href = task.url;
        badge.textContent = task.text;
        badge.title = task.title;
        badge.setAttribute("data-task", id);
        // Just under the task, and never shrunk below its size: it stays readable on a
        // diagram zoomed out to fit the page.
        overlays.add(id, "crmflow-heat", { position: { bottom: -4, left: 0 }, scale: { min: 1 }, html: badge });
      });
      viewer.on("element.click", function (event) {
        var task = heat[event.element.id];
        if (task) {
          window.location.assign(task.url);
        }
      });
    });
  }

  document.querySelectorAll("[data-heatmap]").forEach(show);
})();

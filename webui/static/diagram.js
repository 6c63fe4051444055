// Shows every [data-diagram] block with bpmn-js (served locally from /vendor) and marks
// elements: {"completed": [ids], "current": [ids], "overdue": [ids], "problem": [ids]}.
// window.crmflowRenderDiagram is shared with the pages that decorate a diagram their own way.
(function () {
  "use strict";
  var messages = JSON.parse(document.getElementById("diagram-messages").textContent);

  // Renders the diagram whose XML is in the container's .diagram-xml, then lets
  // decorate(viewer) mark it; the container's data-rendered says how it went.
  function renderDiagram(container, decorate) {
    var status = container.querySelector(".diagram-status");
    var xml = JSON.parse(container.querySelector(".diagram-xml").textContent);
    if (typeof window.BpmnJS !== "function") {
      status.textContent = messages.missing;
      return;
    }
    var viewer = new window.BpmnJS({ container: container });
    window.crmflowWithLayout(xml).then(function (laidOut) {
      return viewer.importXML(laidOut);
    }).then(function () {
      status.remove();
      decorate(viewer);
      container.setAttribute("data-rendered", "true");
    }).catch(function (error) {
      status.textContent = messages.failed.replace("{reason}", error.message || String(error));
      container.setAttribute("data-rendered", "failed");
    });
  }
  window.crmflowRenderDiagram = renderDiagram;

  function showWithMarkers(container) {
    var markers = JSON.parse(container.querySelector(".diagram-markers").textContent || "{}");
    renderDiagram(container, function (viewer) {
      var canvas = viewer.get("canvas");
      var registry = viewer.get("elementRegistry");
      canvas.zoom("fit-viewport");
      Object.keys(markers).forEach(function (kind) {
        (markers[kind] || []).forEach(function (id) {
          if (registry.get(id)) {
            canvas.addMarker(id, "cf-" + kind);
          }
        });
      });
    });
  }

  document.querySelectorAll("[data-diagram]").forEach(showWithMarkers);
})();

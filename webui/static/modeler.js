// The in-browser modeler: bpmn-js with the Camunda extensions (so camunda:formData,
// assignees and due dates survive editing), saved through the server's validation.
(function () {
  "use strict";
  var messages = JSON.parse(document.getElementById("modeler-messages").textContent);
  var container = document.getElementById("modeler");
  var problemsBox = document.getElementById("modeler-problems");
  var saveButton = document.getElementById("save-model");
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var xml = JSON.parse(container.querySelector(".diagram-xml").textContent);
  var marked = [];

  function say(text, kind) {
    problemsBox.innerHTML = "";
    var box = document.createElement("div");
    box.className = "flash flash-" + kind;
    box.textContent = text;
    problemsBox.appendChild(box);
    return box;
  }

  if (typeof window.BpmnJS !== "function") {
    say(messages.missing, "error");
    saveButton.disabled = true;
    return;
  }

  fetch(container.dataset.moddleUrl).then(function (response) { return response.json(); })
    .then(function (camunda) {
      var modeler = new window.BpmnJS({ container: container, moddleExtensions: { camunda: camunda } });
      return window.crmflowWithLayout(xml).then(function (laidOut) {
        return modeler.importXML(laidOut);
      }).then(function () {
        modeler.get("canvas").zoom("fit-viewport");
        container.setAttribute("data-rendered", "true");
        saveButton.addEventListener("click", function () { save(modeler); });
      });
    })
    .catch(function (error) { say(error.message || String(error), "error"); });

  function save(modeler) {
    var canvas = modeler.get("canvas");
    var registry = modeler.get("elementRegistry");
    marked.forEach(function (id) { if (registry.get(id)) { canvas.removeMarker(id, "cf-problem"); } });
    marked = [];
    say(messages.saving, "info");
    saveButton.disabled = true;
    modeler.saveXML({ format: true }).then(function (result) {
      var body = new URLSearchParams();
      body.set("xml", result.xml);
      return fetch(container.dataset.saveUrl, {
        method: "POST",
        headers: { "X-CSRFToken": csrf, "Content-Type": "application/x-www-form-urlencoded" },
        body: body,
        credentials: "same-origin"
      });
    }).then(function (response) {
      return response.json();
    }).then(function (answer) {
      if (answer.ok) {
        window.location.href = answer.url;
        return;
      }
      var box = say(messages.failed + " " + (answer.message || ""), "error");
      var list = document.createElement("ul");
      (answer.problems || []).forEach(function (problem) {
        var item = document.createElement("li");
        item.textContent = [problem.file, problem.line, problem.element_id, problem.message]
          .filter(function (part) { return part; }).join(" · ");
        list.appendChild(item);
        if (problem.element_id && registry.get(problem.element_id)) {
          canvas.addMarker(problem.element_id, "cf-problem");
          marked.push(problem.element_id);
        }
      });
      box.appendChild(list);
    }).catch(function () {
      say(messages.network, "error");
    }).finally(function () {
      saveButton.disabled = false;
    });
  }
})();

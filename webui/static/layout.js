// Files written by hand (or by tools without a layout) have no BPMNDiagram section and
// bpmn-js cannot draw them: lay them out first with bpmn-auto-layout.
window.crmflowWithLayout = function (xml) {
  "use strict";
  if (/<([\w-]+:)?BPMNDiagram[\s>]/.test(xml)) {
    return Promise.resolve(xml);
  }
  return import("bpmn-auto-layout").then(function (module) {
    return module.layoutProcess(xml);
  });
};

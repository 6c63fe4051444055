"""Each diagram of the library opens in bpmn.io (bpmn-js, as the web UI and Camunda Modeler
render it) without errors or warnings, in Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support import LIBRARY, REPOSITORY

ROOT = REPOSITORY
VIEWER = ROOT / "node_modules" / "bpmn-js" / "dist" / "bpmn-viewer.production.min.js"
FILES = sorted(LIBRARY.glob("*.bpmn"))


@pytest.fixture(scope="module")
def viewer_page(browser):
    if not VIEWER.exists():
        pytest.fail(f"{VIEWER} is missing: run `npm ci` in the project folder (bash .ci/run does)", pytrace=False)
    page = browser.new_page(viewport={"width": 2400, "height": 1400})
    page.set_content('<div id="canvas" style="width:2400px;height:1400px"></div>')
    page.add_script_tag(path=str(VIEWER))
    yield page
    page.close()


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_the_diagram_opens_in_bpmn_js_without_warnings(viewer_page, path, tmp_path):
    result = viewer_page.evaluate("""async (xml) => {
        document.getElementById('canvas').innerHTML = '';
        const viewer = new BpmnJS({container: '#canvas'});
        try {
            const {warnings} = await viewer.importXML(xml);
            viewer.get('canvas').zoom('fit-viewport');
            const shapes = viewer.get('elementRegistry').getAll().length;
            return {warnings: warnings.map(w => w.message), shapes: shapes};
        } catch (error) {
            return {error: error.message, warnings: (error.warnings || []).map(w => w.message)};
        }
    }""", path.read_text(encoding="utf-8"))
    assert result.get("error") is None, result
    assert result["warnings"] == []
    assert result["shapes"] > 5
    if os.environ.get("CRMFLOW_DIAGRAM_SCREENSHOTS"):  # to look at the layout: a PNG per diagram
        viewer_page.screenshot(path=str(Path(os.environ["CRMFLOW_DIAGRAM_SCREENSHOTS"]) / f"{path.stem}.png"))

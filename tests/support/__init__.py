"""What the suite's tests share: paths, and the fixture plugins the root conftest loads
(``support.engine``: a clock and a migrated engine; ``support.crm``: the CRM on the process
library; ``support.office``: the web app on a small company; ``support.chromium``: one
browser for the whole run). Helpers that are not fixtures are imported from here by name."""

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPOSITORY = TESTS.parent
TEST_BPMN = TESTS / "bpmn"  # small processes the engine tests run
LIBRARY = REPOSITORY / "bpmn"  # the product's processes: sales and claims
DATA = TESTS / "data"

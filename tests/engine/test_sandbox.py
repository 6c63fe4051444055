"""The sandbox around BPMN script tasks and expressions, exercised through real workflows."""

from __future__ import annotations

import threading
from datetime import datetime
from xml.sax.saxutils import escape

import pytest
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine.python_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from engine.bpmn.parser import CrmParser
from engine.bpmn.scripting import SandboxedScriptEngine, check_expression, check_script

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
XSI = "http://www.w3.org/2001/XMLSchema-instance"


def load(process_xml: str):
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="{BPMN}" xmlns:xsi="{XSI}" id="defs" targetNamespace="http://crmflow.test">
  <bpmn:process id="Process" isExecutable="true">{process_xml}</bpmn:process>
</bpmn:definitions>"""
    parser = CrmParser()
    parser.add_bpmn_str(xml.encode(), filename="x.bpmn")
    return parser.get_spec("Process"), parser.get_subprocess_specs("Process")


def script_process(script: str):
    return load(f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="to_script" sourceRef="start" targetRef="calc_discount"/>
    <bpmn:scriptTask id="calc_discount" name="Calculate discount" scriptFormat="python">
      <bpmn:script>{escape(script)}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="to_end" sourceRef="calc_discount" targetRef="end"/>
    <bpmn:endEvent id="end"/>""")


def gateway_process(condition: str):
    """Routes to `end_big` when `condition` holds, else to `end_small`."""
    return load(f"""
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="to_gateway" sourceRef="start" targetRef="big_deal"/>
    <bpmn:exclusiveGateway id="big_deal" name="Big deal?" default="to_small"/>
    <bpmn:sequenceFlow id="to_big" sourceRef="big_deal" targetRef="end_big">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{escape(condition)}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="to_small" sourceRef="big_deal" targetRef="end_small"/>
    <bpmn:endEvent id="end_big"/>
    <bpmn:endEvent id="end_small"/>""")


def run(process, data=None, engine=None) -> BpmnWorkflow:
    spec, subprocess_specs = process
    workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=engine or SandboxedScriptEngine())
    workflow.get_next_task(state=TaskState.READY).data.update(data or {})
    workflow.do_engine_steps()
    return workflow


def script_task_data(workflow: BpmnWorkflow) -> dict:
    return workflow.get_next_task(spec_name="calc_discount").data


def route(workflow: BpmnWorkflow) -> str:
    (end,) = [task.task_spec.bpmn_id for task in workflow.get_tasks(state=TaskState.COMPLETED)
              if task.task_spec.bpmn_id in ("end_big", "end_small")]
    return end


def refusal(process, data=None, engine=None) -> str:
    with pytest.raises(WorkflowTaskException) as caught:
        run(process, data, engine)
    return str(caught.value)


# --- legitimate scripts ------------------------------------------------------------------


def test_script_results_become_task_data_and_nothing_injected_leaks():
    script = """
subtotal = sum(line["price"] * line["qty"] for line in lines)
discount = round(subtotal * 0.1, 2) if subtotal > 100 else 0
skus = sorted({line["sku"] for line in lines})
by_sku = {line["sku"]: line["qty"] for line in lines}
for index, sku in enumerate(skus):
    last_index = index
count = 0
while count < 3:
    count += 1
"""
    lines = [{"sku": "b", "price": 60, "qty": 1}, {"sku": "a", "price": 25, "qty": 2}]

    workflow = run(script_process(script), {"lines": lines})

    assert workflow.is_completed()
    assert script_task_data(workflow) == {
        "lines": lines,
        "subtotal": 110,
        "discount": 11.0,
        "skus": ["a", "b"],
        "by_sku": {"b": 1, "a": 2},
        "index": 1,
        "sku": "b",
        "last_index": 1,
        "count": 3,
    }


def test_datetime_and_decimal_arithmetic():
    script = """
due = datetime.fromisoformat(signed) + timedelta(days=30)
due_iso = due.isoformat()
due_text = due.strftime("%d.%m.%Y")
parsed = datetime.strptime("01.02.2024", "%d.%m.%Y")
today_is_a_date = isinstance(date.today(), date)
weekday = date(2024, 3, 1).isoweekday()
total = str(Decimal("19.99") * 3)
label = f"due {due:%Y-%m-%d}, {len(signed)} chars"
"""
    data = script_task_data(run(script_process(script), {"signed": "2024-01-15T09:00:00"}))

    assert data["due"] == datetime(2024, 2, 14, 9, 0)
    assert data["due_iso"] == "2024-02-14T09:00:00"
    assert data["due_text"] == "14.02.2024"
    assert data["parsed"] == datetime(2024, 2, 1)
    assert data["today_is_a_date"] is True
    assert data["weekday"] == 5
    assert data["total"] == "59.97"
    assert data["label"] == "due 2024-02-14, 19 chars"


def test_print_goes_to_the_log_not_to_stdout(capsys, caplog):
    with caplog.at_level("INFO", logger="engine.bpmn.scripting"):
        run(script_process("print('discount', 11.0)"))

    assert capsys.readouterr().out == ""
    assert "Script printed: discount 11.0" in caplog.messages


def test_functions_a_script_defines_do_not_become_task_data():
    script = """
def with_tax(amount):
    return amount * 1.2
gross = with_tax(100)
double = lambda x: x * 2
twice = double(2)
"""
    data = script_task_data(run(script_process(script)))

    assert data == {"gross": 120.0, "twice": 4}


def test_task_data_under_reserved_names_survives_a_script():
    data = script_task_data(run(script_process("x = 1"), {"__builtins__": "from a form"}))

    assert data == {"__builtins__": "from a form", "x": 1}


@pytest.mark.parametrize(
    ("condition", "data", "expected"),
    [
        pytest.param("amount > 1000", {"amount": 1500}, "end_big", id="python-true"),
        pytest.param("amount > 1000", {"amount": 500}, "end_small", id="python-false"),
        pytest.param("${amount > 1000 && approved}", {"amount": 1500, "approved": True}, "end_big",
                     id="camunda-true"),
        pytest.param("${amount > 1000 && approved}", {"amount": 1500, "approved": False}, "end_small",
                     id="camunda-false"),
        pytest.param("${stage eq 'won' || !(owner == null)}", {"stage": "lost", "owner": "ann"}, "end_big",
                     id="camunda-words"),
    ],
)
def test_gateway_conditions_choose_the_branch(condition, data, expected):
    assert route(run(gateway_process(condition), data)) == expected


# --- escapes -----------------------------------------------------------------------------

# Each would create CANARY under plain exec (test_escapes_work_without_the_sandbox proves it).
FILE_ESCAPES = [
    pytest.param("import os\nos.mkdir(CANARY)", id="import-os"),
    pytest.param("from os import system\nsystem('touch ' + CANARY)", id="from-os-import-system"),
    pytest.param("__import__('os').mkdir(CANARY)", id="dunder-import"),
    pytest.param("open(CANARY, 'w').close()", id="open-for-writing"),
    pytest.param(
        "wrap_close = [c for c in ().__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]\n"
        "wrap_close.__init__.__globals__['mkdir'](CANARY)",
        id="tuple-class-subclasses",
    ),
    pytest.param(
        "wrap_close = [c for c in [].__class__.__base__.__subclasses__() if c.__name__ == '_wrap_close'][0]\n"
        "wrap_close.__init__.__globals__['mkdir'](CANARY)",
        id="list-class-subclasses",
    ),
    pytest.param(
        "base = type(1).mro()[-1]\n"
        "wrap_close = [c for c in base.__subclasses__() if c.__name__ == '_wrap_close'][0]\n"
        "wrap_close.__init__.__globals__['mkdir'](CANARY)",
        id="type-mro",
    ),
    pytest.param(
        "wrap_close = [c for c in object.__subclasses__() if c.__name__ == '_wrap_close'][0]\n"
        "wrap_close.__init__.__globals__['mkdir'](CANARY)",
        id="object-subclasses",
    ),
    pytest.param(
        "f = lambda: 0\ngetattr(f, '__globals__')['__builtins__']['open'](CANARY, 'w').close()",
        id="getattr-globals",
    ),
    pytest.param(
        "def f():\n    pass\nf.__globals__['__builtins__']['open'](CANARY, 'w').close()",
        id="function-globals",
    ),
    pytest.param("def f():\n    pass\nf.__builtins__['open'](CANARY, 'w').close()", id="function-builtins"),
    pytest.param(
        "frame = (x for x in [1]).gi_frame\nframe.f_globals['__builtins__']['open'](CANARY, 'w').close()",
        id="generator-frame",
    ),
    pytest.param("eval(\"open(CANARY, 'w').close()\")", id="eval"),
    pytest.param("exec(\"open(CANARY, 'w').close()\")", id="exec"),
    pytest.param(
        "code = compile(\"open(CANARY, 'w').close()\", 'x', 'exec')\nexec(code)",
        id="compile",
    ),
    pytest.param("globals()['__builtins__']['open'](CANARY, 'w').close()", id="globals"),
    pytest.param("vars()['__builtins__']['open'](CANARY, 'w').close()", id="vars"),
    pytest.param("locals()['__builtins__']['open'](CANARY, 'w').close()", id="locals"),
    pytest.param("grab = lambda o=open: o(CANARY, 'w')\ngrab().close()", id="lambda-default"),
]

# Each would leak something into `leak`, call into the interpreter or write to an object:
# nothing a sandboxed script may do, whether or not plain exec would manage it.
OTHER_ESCAPES = [
    pytest.param("leak = '{0.__class__.__mro__}'.format(1)", id="format-field-walk"),
    pytest.param("fmt = str.format\nleak = fmt('{0.__class__}', 1)", id="str-format-attribute"),
    pytest.param("leak = '{x.__class__}'.format_map({'x': 1})", id="format-map"),
    pytest.param("breakpoint()\nleak = True", id="breakpoint"),
    pytest.param("help(str)\nleak = True", id="help"),
    pytest.param("exit()\nleak = True", id="exit"),
    pytest.param("datetime.max = 1\nleak = True", id="attribute-write"),
    pytest.param("setattr(datetime, 'max', 1)\nleak = True", id="setattr"),
    pytest.param("def f():\n    pass\nf.x = 1\nleak = True", id="function-attribute-write"),
    pytest.param("def f(_getattr_=None):\n    return 1\nleak = f()", id="guard-shadowing-argument"),
    # datetime's C code may import these two; a script may not.
    pytest.param("import time\nleak = time.time()", id="import-what-datetime-imports"),
]


def canary_script(payload: str, canary) -> str:
    return f"CANARY = {str(canary)!r}\n{payload}"


@pytest.mark.parametrize("payload", FILE_ESCAPES + OTHER_ESCAPES)
def test_escapes_are_refused_and_name_the_task(payload, tmp_path):
    canary = tmp_path / "escaped"
    process = script_process(canary_script(payload, canary))

    with pytest.raises(WorkflowTaskException) as caught:
        run(process)

    message = str(caught.value)
    assert message.startswith("Script task 'calc_discount' (\"Calculate discount\") ")
    assert caught.value.task.task_spec.bpmn_id == "calc_discount"
    assert not canary.exists()
    assert all("leak" not in task.data for task in caught.value.task.workflow.get_tasks())


@pytest.mark.parametrize("payload", FILE_ESCAPES)
def test_escapes_work_without_the_sandbox(payload, tmp_path):
    """The control: under SpiffWorkflow's own engine every FILE_ESCAPES payload gets out."""
    canary = tmp_path / "escaped"

    run(script_process(canary_script(payload, canary)), engine=PythonScriptEngine())

    assert canary.exists()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param("import os", "cannot run: importing modules is not allowed (line 1: import os)",
                     id="import"),
        pytest.param("x = 1\nopen('/tmp/x', 'w')",
                     "cannot run: 'open' is not available to scripts (line 2: open('/tmp/x', 'w'))", id="open"),
        pytest.param("code = compile('1', 'x', 'eval')",
                     "cannot run: 'compile' is not available to scripts (line 1: code = compile('1', 'x', 'eval'))",
                     id="compile"),
        pytest.param("kind = type(1)", "cannot run: 'type' is not available to scripts (line 1: kind = type(1))",
                     id="type"),
        pytest.param("leak = ().__class__",
                     'cannot run: "__class__" is an invalid attribute name because it starts with "_"'
                     " (line 1: leak = ().__class__)", id="underscore"),
        pytest.param("'{0}'.format(1)", "cannot run: using the attribute 'format' is not allowed; "
                     "use an f-string instead (line 1: '{0}'.format(1))", id="format"),
        pytest.param("datetime.max = 1",
                     "cannot run: changing attributes of objects is not allowed (line 1: datetime.max = 1)",
                     id="attribute-write"),
        pytest.param("total = 1 / 0", "failed: ZeroDivisionError: division by zero (line 1: total = 1 / 0)",
                     id="ordinary-error"),
    ],
)
def test_messages_say_in_plain_words_what_was_refused(payload, reason):
    message = refusal(script_process(payload))

    assert message.startswith(f"Script task 'calc_discount' (\"Calculate discount\") {reason}")


@pytest.mark.parametrize(
    "condition",
    [
        pytest.param("__import__('os').mkdir(CANARY)", id="dunder-import"),
        pytest.param("open(CANARY, 'w')", id="open"),
        pytest.param("[].__class__.__base__", id="list-class"),
        pytest.param("(x for x in [1]).gi_frame.f_globals", id="generator-frame"),
        pytest.param("'{0.__class__}'.format(1)", id="format"),
        pytest.param("${getattr(amount, '__class__') != null}", id="camunda-getattr"),
    ],
)
def test_escapes_in_gateway_conditions_are_refused(condition, tmp_path):
    canary = tmp_path / "escaped"

    message = refusal(gateway_process(condition), {"amount": 1, "CANARY": str(canary)})

    assert message.startswith(f"Expression {condition!r} on exclusive gateway 'big_deal' (\"Big deal?\")")
    assert not canary.exists()


# --- deploy-time checks ------------------------------------------------------------------


def test_check_script_reports_syntax_errors_with_their_line():
    assert check_script("total = 1\nif total > 0\n    total = 2") == [
        "syntax error: expected ':' (line 2: if total > 0)",
    ]


def test_check_script_reports_syntax_errors_found_only_when_compiling():
    assert check_script("total = 1\nreturn total") == ["syntax error: 'return' outside function (line 2: return total)"]


def test_check_script_reports_forbidden_constructs_without_running_them(tmp_path):
    canary = tmp_path / "escaped"
    script = f"import os\nos.mkdir({str(canary)!r})\nfields = ().__class__"

    assert check_script(script) == [
        "importing modules is not allowed (line 1: import os)",
        '"__class__" is an invalid attribute name because it starts with "_" (line 3: fields = ().__class__)',
    ]
    assert check_script(f"open({str(canary)!r}, 'w')") == []
    assert not canary.exists()


def test_check_script_accepts_a_legitimate_script():
    assert check_script("discount = round(sum(x * 2 for x in prices), 2)") == []


def test_check_expression_translates_camunda_before_checking():
    assert check_expression("${amount > 1000 && approved}") == []
    assert check_expression("${amount >}") == ["syntax error: invalid syntax (line 1: amount >)"]
    assert check_expression("__import__('os')") == [
        "\"__import__\" is an invalid variable name because it starts with \"_\" (line 1: __import__('os'))",
    ]


def test_overlong_scripts_are_refused():
    assert check_script("x = 1\n" * 20_000) == ["it is 120,000 characters long; the limit is 65,536"]


@pytest.mark.parametrize(
    "script",
    [
        pytest.param("x = " + "1 + " * 15_000 + "1", id="long-sum"),
        pytest.param("x = " + "-" * 60_000 + "1", id="many-minus-signs"),
    ],
)
def test_deeply_nested_scripts_are_refused(script):
    assert check_script(script) == ["it is nested too deeply to compile"]


# --- runaway scripts ---------------------------------------------------------------------


def test_a_huge_range_is_refused():
    message = refusal(script_process("numbers = range(10**12)"))

    assert "cannot run: range() is limited to 1,000,000 numbers (line 1: numbers = range(10**12))" in message


def test_an_ordinary_loop_stays_within_the_budget():
    data = script_task_data(run(script_process("total = 0\nfor i in range(100000):\n    total += i")))

    assert data["total"] == 4999950000


@pytest.mark.parametrize(
    ("script", "line"),
    [
        pytest.param("while True:\n    pass", "line 1: while True:", id="while"),
        pytest.param("def spin(depth):\n    if depth:\n        spin(depth - 1)\n        spin(depth - 1)\nspin(50)",
                     "line 1: def spin(depth):", id="exponential-recursion"),
        pytest.param("items = [1]\nlast = [items.append(x) for x in items]", "line 2: last = [", id="comprehension"),
        pytest.param("items = [1]\nlist(map(items.append, items))", "line 2: list(map(", id="growing-map"),
        pytest.param("while True:\n    try:\n        while True:\n            pass\n    except:\n        pass",
                     "line 3: while True:", id="bare-except-in-a-loop"),
        pytest.param("try:\n    while True:\n        pass\nfinally:\n    while True:\n        pass",
                     "line 2: while True:", id="loop-in-finally"),
    ],
)
def test_runaway_scripts_are_stopped(script, line):
    """The message names the line where the time first ran out."""
    message = refusal(script_process(script), engine=SandboxedScriptEngine(time_limit=0.2))

    assert "was stopped: it ran longer than 0.2 seconds" in message
    assert line in message


def test_a_script_that_swallows_the_timeout_still_fails():
    script = "try:\n    while True:\n        pass\nexcept:\n    pass\nfinished = True"

    message = refusal(script_process(script), engine=SandboxedScriptEngine(time_limit=0.2))

    assert "was stopped: it ran longer than 0.2 seconds" in message


def test_the_time_budget_works_outside_the_main_thread():
    """Web workers run the engine in threads, where signal-based timeouts cannot work."""
    errors = []

    def worker():
        try:
            run(script_process("while True:\n    pass"), engine=SandboxedScriptEngine(time_limit=0.2))
        except WorkflowTaskException as error:
            errors.append(error)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=10)

    assert not thread.is_alive()
    assert "was stopped" in str(errors[0])

"""Script tasks and expressions that cannot reach the operating system.

SpiffWorkflow's ``PythonScriptEngine`` runs designer code with plain ``exec``/``eval``, so a
script task can ``import os``. ``SandboxedScriptEngine`` compiles every script and expression
with RestrictedPython instead and runs the result against a small set of builtins and guards:

- no imports, no class definitions, no names or attributes starting with ``_``, no attribute
  writes, and no frame/code/``format`` attributes that lead back to the interpreter;
- builtins are RestrictedPython's ``safe_builtins`` plus what process designers use
  (``len``, ``sorted``, ``datetime``, ``Decimal`` ...); ``open``, ``eval``, ``getattr``,
  ``type``, ``globals`` and friends do not exist, and ``print`` goes to the log;
- a wall-clock budget, checked at every loop iteration and function call, stops runaway
  scripts without signals (which only work in the main thread), and ``range`` is capped.

``check_script`` and ``check_expression`` report the same problems at deploy time without
running anything.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import logging
import operator
import re
import time
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from types import CodeType
from typing import Literal

from RestrictedPython import compile_restricted_eval, compile_restricted_exec, safe_builtins
from RestrictedPython.Eval import default_guarded_getitem
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safer_getattr_raise,
)
from RestrictedPython.PrintCollector import PrintCollector
from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine.python_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from engine.bpmn.expressions import camunda_to_python

log = logging.getLogger(__name__)

MAX_SOURCE_LENGTH = 64 * 1024  # characters
MAX_RANGE_LENGTH = 1_000_000
DEFAULT_TIME_LIMIT = 5.0  # seconds

# Attributes that lead from an ordinary object back to frames, code, globals or every class
# in the interpreter without a leading underscore. RestrictedPython's INSPECT_ATTRIBUTES covers
# frames, code objects, tracebacks, generators and coroutines (gi_frame, f_globals, tb_frame ...).
DENIED_ATTRIBUTES = INSPECT_ATTRIBUTES | frozenset({
    "co_consts",
    "func_globals", "func_code",  # Python 2 spellings, in case an object still offers them
    "cell_contents",
    "mro",  # from any class to `object`, and from there to every class
    # str.format resolves '{0.__class__}' fields with an unguarded getattr.
    "format", "format_map",
})

_SOURCE_FILENAME = "<sandboxed>"

# RestrictedPython's print support binds this name in the script's namespace.
_PRINT_COLLECTOR = "_print"

_Mode = Literal["exec", "eval"]


@dataclass(frozen=True)
class Problem:
    """Why a script or expression cannot run, and where."""

    reason: str
    line: int | None = None
    statement: str = ""

    def __str__(self) -> str:
        if self.line is None:
            return self.reason
        where = f"line {self.line}: {self.statement}" if self.statement else f"line {self.line}"
        return f"{self.reason} ({where})"


class ScriptRefused(Exception):
    """The sandbox would not compile or run something a script asked for.

    Raised at run time by the guards too, where a script may catch it; that gains nothing,
    since whatever was refused did not happen.
    """

    def __init__(self, *problems: Problem):
        super().__init__("; ".join(map(str, problems)))
        self.problems = problems


class ScriptTimeout(BaseException):
    """A script ran past its time budget.

    A BaseException, so that a script's ``except Exception:`` does not catch it.
    """

    def __init__(self, seconds: float):
        super().__init__(f"it ran longer than {seconds:g} seconds")
        self.seconds = seconds


def check_script(source: str) -> list[str]:
    """Problems that would stop a script task's script from running, without running it."""
    return [str(problem) for problem in _compile(source, "exec")[1]]


def check_expression(source: str) -> list[str]:
    """Problems that would stop an expression (plain Python or Camunda ``${...}``) from
    being evaluated, without evaluating it."""
    return [str(problem) for problem in _compile(camunda_to_python(source), "eval")[1]]


class SandboxedScriptEngine(PythonScriptEngine):
    """A drop-in for SpiffWorkflow's ``PythonScriptEngine`` that runs scripts and expressions
    in the sandbox and reports every failure as a ``WorkflowTaskException`` naming the task."""

    def __init__(self, time_limit: float = DEFAULT_TIME_LIMIT):
        super().__init__(environment=SandboxEnvironment(time_limit))

    def evaluate(self, task, expression, external_context=None):
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except (Exception, ScriptTimeout) as error:
            subject = f"Expression {expression!r} on {_describe_task(task)}"
            raise _task_exception(task, subject, error, source=None) from error

    def execute(self, task, script, external_context=None):
        try:
            return self.environment.execute(script, task.data, external_context)
        except (Exception, ScriptTimeout) as error:
            subject = _capitalized(_describe_task(task))
            raise _task_exception(task, subject, error, source=script) from error


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """Runs RestrictedPython-compiled code against the task data, like SpiffWorkflow's
    ``TaskDataEnvironment``: a script's top-level variables become task data."""

    def __init__(self, time_limit: float = DEFAULT_TIME_LIMIT):
        super().__init__()
        self.time_limit = time_limit

    def evaluate(self, expression, context, external_context=None):
        # Translated here rather than in the engine: SpiffWorkflow also calls the
        # environment directly for conditional start events and loop conditions.
        code = _compiled(camunda_to_python(expression), "eval")
        budget = _Budget(self.time_limit)
        namespace = {**(external_context or {}), **context, **_sandbox_globals(budget)}
        with budget.enforced():
            return eval(code, namespace)

    def execute(self, script, context, external_context=None):
        code = _compiled(script, "exec")
        budget = _Budget(self.time_limit)
        injected = {**(external_context or {}), **_sandbox_globals(budget)}
        reserved = [*injected, _PRINT_COLLECTOR]
        # Task data from outside may use these names; scripts cannot (no leading '_'),
        # so put the data back afterwards instead of letting it stand in for a guard.
        shadowed = {name: context[name] for name in reserved if name in context}
        context.update(injected)
        try:
            with budget.enforced():
                exec(code, context)
        finally:
            for name in reserved:
                context.pop(name, None)
            # Functions and lambdas a script defined are not task data (as in TaskDataEnvironment).
            for name in [name for name, value in context.items() if callable(value)]:
                del context[name]
            context.update(shadowed)
        return True


@lru_cache(maxsize=512)
def _compile(source: str, mode: _Mode) -> tuple[CodeType | None, tuple[Problem, ...]]:
    if len(source) > MAX_SOURCE_LENGTH:
        reason = f"it is {len(source):,} characters long; the limit is {MAX_SOURCE_LENGTH:,}"
        return None, (Problem(reason),)
    compile_restricted = compile_restricted_exec if mode == "exec" else compile_restricted_eval
    try:
        # Parsed here so that syntax errors keep their line; some ('return' outside a function)
        # only show when the checked tree is compiled.
        tree = ast.parse(source, _SOURCE_FILENAME, mode)
        result = compile_restricted(tree, _SOURCE_FILENAME, policy=_SandboxPolicy)
    except SyntaxError as error:
        return None, (Problem(f"syntax error: {error.msg}", error.lineno, _line(source, error.lineno)),)
    except (RecursionError, MemoryError):
        # How CPython's parser and compiler report source nested too deeply (`- - - ... 1`).
        return None, (Problem("it is nested too deeply to compile"),)
    return result.code, tuple(_problem(error, source) for error in result.errors)


def _compiled(source: str, mode: _Mode) -> CodeType:
    code, problems = _compile(source, mode)
    if problems:
        raise ScriptRefused(*problems)
    return code


# RestrictedPython reports every policy error as "Line <n>: <reason>".
_POLICY_ERROR = re.compile(r"Line (?P<line>\d+|None): (?P<reason>.*)", re.DOTALL)


def _problem(error: str, source: str) -> Problem:
    match = _POLICY_ERROR.fullmatch(error)
    if match is None or match["line"] == "None":
        return Problem(error)
    line = int(match["line"])
    return Problem(match["reason"].rstrip("."), line, _line(source, line))


def _line(source: str, number: int | None) -> str:
    lines = source.splitlines()
    return lines[number - 1].strip() if number and 0 < number <= len(lines) else ""


class _SandboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython's rules, plus: no imports, no class definitions, no attribute writes,
    the introspection deny-list, and a time-budget checkpoint in every loop and function.

    ``for`` loops and comprehensions meet the budget through ``_getiter_`` instead.
    """

    def visit_Import(self, node):
        self.error(node, "importing modules is not allowed")
        return node

    visit_ImportFrom = visit_Import

    def visit_ClassDef(self, node):
        self.error(node, "defining classes is not allowed")
        return self.node_contents_visit(node)

    def visit_Attribute(self, node):
        if node.attr in DENIED_ATTRIBUTES:
            self.error(node, _denied_attribute_reason(node.attr))
            return self.node_contents_visit(node)
        if not isinstance(node.ctx, ast.Load):
            self.error(node, "changing attributes of objects is not allowed")
            return self.node_contents_visit(node)
        return super().visit_Attribute(node)

    def visit_While(self, node):
        node = super().visit_While(node)
        node.body.insert(0, ast.Expr(self._checkpoint(node)))
        ast.fix_missing_locations(node)
        return node

    def visit_FunctionDef(self, node):
        node = super().visit_FunctionDef(node)
        node.body.insert(0, ast.Expr(self._checkpoint(node)))
        ast.fix_missing_locations(node)
        return node

    def visit_Lambda(self, node):
        node = super().visit_Lambda(node)
        # A lambda's body is a single expression: `_checkpoint_() or body` (the checkpoint returns None).
        node.body = ast.BoolOp(op=ast.Or(), values=[self._checkpoint(node.body), node.body])
        ast.fix_missing_locations(node)
        return node

    @staticmethod
    def _checkpoint(located: ast.AST) -> ast.Call:
        call = ast.Call(func=ast.Name("_checkpoint_", ast.Load()), args=[], keywords=[])
        return ast.copy_location(call, located)


def _denied_attribute_reason(name: str) -> str:
    reason = f"using the attribute '{name}' is not allowed"
    if name in ("format", "format_map"):
        return f"{reason}; use an f-string instead"
    return reason


class _Budget:
    """The wall-clock allowance of one run, checked at every loop iteration and call."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._deadline = time.monotonic() + seconds
        self._timeout: ScriptTimeout | None = None

    def checkpoint(self) -> None:
        if time.monotonic() > self._deadline:
            self._timeout = self._timeout or ScriptTimeout(self.seconds)
            raise self._timeout

    def iterate(self, iterable: Iterable) -> Iterator:
        for item in iterable:
            self.checkpoint()
            yield item

    @contextmanager
    def enforced(self) -> Iterator[None]:
        try:
            yield
        finally:
            # A script can swallow the timeout with a bare `except:` and carry on to the end;
            # the run has still overrun.
            if self._timeout is not None:
                raise self._timeout


_IN_PLACE_OPERATORS = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "&=": operator.iand,
    "|=": operator.ior,
    "^=": operator.ixor,
    "@=": operator.imatmul,
}


def _inplacevar(op: str, target, value):
    """`n += 1` is compiled to `n = _inplacevar_('+=', n, 1)`; RestrictedPython ships no default."""
    return _IN_PLACE_OPERATORS[op](target, value)


def _apply(function, *args, **kwargs):
    """`f(*args, **kwargs)` is compiled to `_apply_(f, *args, **kwargs)`."""
    return function(*args, **kwargs)


def _guarded_getattr(obj, name: str):
    if name.startswith("_") or name in DENIED_ATTRIBUTES:
        raise ScriptRefused(Problem(_denied_attribute_reason(name)))
    return safer_getattr_raise(obj, name)


# datetime's C code imports `time` and `_strptime` (for strftime, strptime, date.today) through
# the __import__ of whatever code called it, which is the script. Scripts themselves cannot reach
# this: import statements are refused at compile time and no script can name `__import__`.
_MODULES_DATETIME_IMPORTS = frozenset({"time", "_strptime"})


def _import_for_datetime(name: str, *_import_args):
    if name not in _MODULES_DATETIME_IMPORTS:
        raise ScriptRefused(Problem("importing modules is not allowed"))
    return importlib.import_module(name)


def _limited_range(*args: int) -> range:
    numbers = range(*args)
    # Slicing, unlike len(), works for ranges longer than sys.maxsize.
    if numbers[MAX_RANGE_LENGTH:]:
        raise ScriptRefused(Problem(f"range() is limited to {MAX_RANGE_LENGTH:,} numbers"))
    return numbers


class _PrintToLog(PrintCollector):
    """print() in a script goes to the engine log, never to the worker's stdout (and, as
    RestrictedPython provides, to the script's own `printed`)."""

    def _call_print(self, *objects, **options):
        log.info("Script printed: %s", " ".join(map(str, objects)))
        super()._call_print(*objects, **options)


_DESIGNER_BUILTINS = (
    "len", "min", "max", "sum", "sorted", "round", "abs", "any", "all", "enumerate", "zip",
    "list", "dict", "set", "tuple", "str", "int", "float", "bool", "isinstance", "reversed",
)

# RestrictedPython leaves sorted/zip/tuple/reversed out because they iterate in C, past a
# `_getiter_` that checks each item; ours only meters time, so that does not matter here.
_SCRIPT_BUILTINS = {
    **{
        name: value
        for name, value in safe_builtins.items()
        # Classes are refused at compile time; attributes are read through `_getattr_` only.
        if name not in {"__build_class__", "_getattr_", "setattr", "delattr"}
    },
    **{name: getattr(builtins, name) for name in _DESIGNER_BUILTINS},
    "range": _limited_range,
    "__import__": _import_for_datetime,
    "datetime": datetime,
    "date": date,
    "timedelta": timedelta,
    "Decimal": Decimal,
}


def _sandbox_globals(budget: _Budget) -> dict:
    """The builtins and the guards RestrictedPython-compiled code calls, for one run."""

    # map and filter call a function per item in C, fed by an iterable that function may grow
    # (`list(map(xs.append, xs))` never ends), so their items pass the checkpoint.
    def metered_map(function, *iterables):
        return map(function, *(budget.iterate(iterable) for iterable in iterables))

    def metered_filter(function, iterable):
        return filter(function, budget.iterate(iterable))

    return {
        "__builtins__": {**_SCRIPT_BUILTINS, "map": metered_map, "filter": metered_filter},
        "_getattr_": _guarded_getattr,
        "_getitem_": default_guarded_getitem,
        "_getiter_": budget.iterate,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_write_": full_write_guard,
        "_inplacevar_": _inplacevar,
        "_apply_": _apply,
        "_print_": _PrintToLog,
        "_checkpoint_": budget.checkpoint,
    }


def _describe_task(task) -> str:
    """e.g. `script task 'calc_discount' ("Calculate discount")`."""
    spec = task.task_spec
    kind = (spec.description or "task").lower()
    name = f' ("{spec.bpmn_name}")' if spec.bpmn_name else ""
    return f"{kind} '{spec.bpmn_id}'{name}"


def _capitalized(text: str) -> str:
    return text[:1].upper() + text[1:]


def _task_exception(task, subject: str, error: BaseException, source: str | None) -> WorkflowTaskException:
    """Explain `error` in plain words; `source` is the script, or None for an expression
    (which the subject already quotes)."""
    line = _failing_line(error) if source else None
    where = {"line": line, "statement": _line(source, line) if source else ""}
    if isinstance(error, ScriptRefused):
        # Problems found at compile time carry their line; refusals by a guard get it here.
        outcome = "cannot run"
        problems = [problem if problem.line else replace(problem, **where) for problem in error.problems]
    elif isinstance(error, NameError) and hasattr(builtins, error.name or ""):
        # Every Python builtin a script cannot see was left out on purpose.
        outcome, problems = "cannot run", [Problem(f"'{error.name}' is not available to scripts", **where)]
    elif isinstance(error, ScriptTimeout):
        outcome, problems = "was stopped", [Problem(str(error), **where)]
    else:
        outcome, problems = "failed", [Problem(f"{type(error).__name__}: {error}", **where)]
    first, *others = problems
    message = f"{subject} {outcome}: {first}" + (f" (and {len(others)} more)" if others else "")
    exception = WorkflowTaskException(
        message, task=task, exception=error, line_number=first.line, error_line=first.statement
    )
    # SpiffWorkflow guesses "did you mean ...?" for every NameError: helpful for a typo, misleading
    # for a builtin left out on purpose, and None when it has no guess.
    exception.notes = [note for note in exception.notes if note and outcome == "failed"]
    return exception


def _failing_line(error: BaseException) -> int | None:
    """The line of the script or expression that was running when `error` was raised."""
    lines = [line for frame, line in traceback.walk_tb(error.__traceback__)
             if frame.f_code.co_filename == _SOURCE_FILENAME]
    return lines[-1] if lines else None

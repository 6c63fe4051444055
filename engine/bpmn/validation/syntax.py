"""Whether scripts and expressions of a diagram compile in the sandbox, said without running them."""

from __future__ import annotations

import re
from collections.abc import Callable

from RestrictedPython import compile_restricted_eval

from engine.bpmn.expressions import camunda_to_python


def expression_error(text: str) -> str | None:
    """Why the expression (``${...}`` or Python) does not compile, or None."""
    errors = restricted_errors(compile_restricted_eval, camunda_to_python(text))
    return split_restricted_error(errors[0])[1] if errors else None


def restricted_errors(compile_restricted: Callable, source: str) -> list[str]:
    """RestrictedPython's complaints about the source, each "Line n: message"."""
    try:
        return list(compile_restricted(source, filename="<bpmn>").errors)
    except RecursionError:  # Python's own parser gives up on very deeply nested code
        return ["Line 1: it is nested too deeply for Python to compile"]


def split_restricted_error(error: str) -> tuple[int, str]:
    """RestrictedPython reports "Line 3: SyntaxError: invalid syntax at statement: 'if x'"."""
    match = re.match(r"Line (\d+): (?:SyntaxError: )?(.*)", error, re.DOTALL)
    if not match:
        return 1, error
    return int(match.group(1)), match.group(2).strip().rstrip(".")

"""Expressions as process designers write them in Camunda Modeler.

Camunda writes ``${amount > 1000 && approved}`` (JUEL); SpiffWorkflow evaluates Python.
A small, token-aware translation covers what BPMN diagrams use in conditions, assignees
and due dates; anything it does not recognise is passed through unchanged, so plain
Python expressions keep working.
"""

from __future__ import annotations

import re

_WRAPPED = re.compile(r"^\s*[$#]\{(?P<body>.*)\}\s*$", re.DOTALL)

_TOKEN = re.compile(
    r"""
    (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>&&|\|\||!=|!)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<other>\s+|.)
    """,
    re.VERBOSE | re.DOTALL,
)

_WORDS = {
    "eq": "==", "ne": "!=", "lt": "<", "gt": ">", "le": "<=", "ge": ">=",
    "true": "True", "false": "False", "null": "None",
    "div": "/", "mod": "%", "empty": "not",
}
_OPS = {"&&": " and ", "||": " or ", "!": " not ", "!=": "!="}

_ISO_DURATION = r"P(?!$)(?:\d+(?:[.,]\d+)?[YMWD])*(?:T(?:\d+(?:[.,]\d+)?[HMS])+)?"
_ISO_DATETIME = r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
_ISO_LITERAL = re.compile(
    rf"^(?:R\d*/(?:{_ISO_DATETIME}/)?{_ISO_DURATION}(?:/{_ISO_DATETIME})?|{_ISO_DURATION}|{_ISO_DATETIME})$"
)


def is_wrapped(text: str) -> bool:
    """True for ``${...}`` / ``#{...}``: an expression rather than a literal."""
    return bool(_WRAPPED.match(text))


def camunda_to_python(text: str) -> str:
    """Translate one expression to Python source; ``${...}`` is unwrapped first."""
    match = _WRAPPED.match(text)
    body = match.group("body") if match else text
    if not match and not re.search(r"&&|\|\||\b(eq|ne|lt|gt|le|ge|true|false|null)\b", body):
        return text.strip()
    out = []
    for token in _TOKEN.finditer(body):
        kind, value = token.lastgroup, token.group()
        if kind == "op":
            out.append(_OPS[value])
        elif kind == "word":
            out.append(_WORDS.get(value, value))
        else:
            out.append(value)
    return "".join(out).strip()


def unquoted(text: str) -> str:
    """``'P14D'`` or ``"PT0.25S"`` without its quotes, as SpiffWorkflow's own timers and
    SpiffArena write them; any other text as it is."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def iso8601_literal(text: str) -> bool:
    """True for an ISO 8601 duration, date-time or repeating interval such as
    ``PT4H``, ``P2D``, ``R3/P1D`` or ``2026-12-01T09:00:00Z``."""
    return bool(_ISO_LITERAL.match(text.strip()))

"""The BPMN source of a deployed version, for bpmn-js."""

from __future__ import annotations

from typing import Protocol

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
# Deployed files were validated already; still, never resolve entities or reach the network.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


class Deployed(Protocol):
    """A deployed version with its sources loaded (``webui.readmodel``'s definitions)."""

    key: str
    sources: dict[str, str]


def process_file(definition: Deployed) -> tuple[str, str]:
    """(file name, XML) of the BPMN file that defines the version's own process."""
    for name, text in sorted(definition.sources.items()):
        if not name.endswith(".bpmn"):
            continue
        try:
            root = etree.fromstring(text.encode("utf-8"), _PARSER)
        except etree.XMLSyntaxError:
            continue
        if root.find(f"{{{BPMN_NS}}}process[@id='{definition.key}']") is not None:
            return name, text
    name, text = next((n, t) for n, t in sorted(definition.sources.items()) if n.endswith(".bpmn"))
    return name, text

"""The operator console's pages and the PromQL each graph draws, read from the templates themselves
(infra/prometheus/consoles/*.html), so the tests and bench/console.py cannot drift from the pages.

A graph is written `<div id="g_…">` followed by `KP.graph({node: …, expr: "…" | ["…", …], …})`; the
expression is a JSON string or list of strings (the pages keep them so). Table cells run queries at
render time (`kp_value`, `range query`), and a failing one makes Prometheus answer 500.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from infra.local.prometheus import CONSOLE_LIBRARIES_DIR, CONSOLES_DIR

PAGES: Final = ("index.html", "cash-to-digital.html", "ledger.html", "api-webhooks.html")
_GRAPH: Final = re.compile(
    r'querySelector\("#(?P<id>[\w-]+)"\),\s*expr:\s*(?P<expr>\[.*?\]|"(?:[^"\\]|\\.)*")\s*,', re.DOTALL
)
# Quoted PromQL inside template actions: {{ … "expr" … }}, with \" escapes as Go writes them.
_TEMPLATE_STRING: Final = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ACTION: Final = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


@dataclass(frozen=True)
class Graph:
    """One graph of one page: its element id and the expressions it draws."""

    page: str
    id: str
    exprs: tuple[str, ...]


def graphs(page: str) -> list[Graph]:
    """The graphs of one page, in page order."""
    text = (CONSOLES_DIR / page).read_text()
    found = []
    for match in _GRAPH.finditer(text):
        expr = json.loads(match["expr"])
        found.append(Graph(page, match["id"], tuple(expr) if isinstance(expr, list) else (expr,)))
    return found


def all_graphs() -> list[Graph]:
    """Every graph of every page."""
    return [graph for page in PAGES for graph in graphs(page)]


def template_strings(path: Path) -> list[str]:
    """Every double-quoted string inside a template action of a page or library file (unescaped):
    the queries its tables run, plus format names and suffixes."""
    strings = []
    for action in _ACTION.finditer(path.read_text()):
        strings += [json.loads(f'"{raw}"') for raw in _TEMPLATE_STRING.findall(action[1])]
    return strings


def console_files() -> list[Path]:
    """The pages and the library."""
    return [CONSOLES_DIR / page for page in PAGES] + sorted(CONSOLE_LIBRARIES_DIR.glob("*.lib"))

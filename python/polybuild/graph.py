"""The target graph: a networkx DiGraph with an edge from each target to each target it depends on."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from polybuild.errors import UserError

if TYPE_CHECKING:
    import networkx as nx

    from polybuild.workspace import Workspace


def build_graph(ws: Workspace) -> nx.DiGraph:
    """The dependency graph; a cycle is an error that prints the cycle."""
    import networkx as nx

    g = nx.DiGraph()
    for t in ws.targets.values():
        g.add_node(t.id)
    for t in ws.targets.values():
        for dep in sorted(t.deps):
            g.add_edge(t.id, dep)
    if nx.is_directed_acyclic_graph(g):  # linear; find_cycle is much slower and only needed to report one
        return g
    cycle = nx.find_cycle(g)
    path = " -> ".join([edge[0] for edge in cycle] + [cycle[0][0]])
    raise UserError(f"dependency cycle: {path}", hint="remove one of these dependencies")


def closure(g: nx.DiGraph, roots: list[str]) -> set[str]:
    """The roots and everything they depend on."""
    import networkx as nx

    selected = set(roots)
    for r in roots:
        selected |= nx.descendants(g, r)
    return selected


def order(g: nx.DiGraph, nodes: set[str]) -> list[str]:
    """Dependencies first; ties broken by id so the order is stable."""
    import networkx as nx

    return list(reversed(list(nx.lexicographical_topological_sort(g.subgraph(nodes), key=_reverse_key))))


def _reverse_key(node: str) -> str:
    # lexicographical_topological_sort yields dependents first; reversing it must still give sorted ties.
    return "".join(chr(0x10FFFF - ord(c)) for c in node)


def render(ws: Workspace, g: nx.DiGraph, nodes: set[str], fmt: str) -> str:
    """The graph as text, json, dot or mermaid."""
    ids = order(g, nodes)
    edges = sorted((a, b) for a, b in g.subgraph(nodes).edges)
    if fmt == "json":
        return json.dumps({"targets": [_node_json(ws, i) for i in ids],
                           "edges": [{"from": a, "to": b} for a, b in edges]}, indent=2)
    if fmt == "dot":
        lines = ["digraph polybuild {", "  rankdir=LR;"]
        lines += [f'  "{i}" [label="{i}\\n{_builder(ws, i)}"];' for i in ids]
        lines += [f'  "{a}" -> "{b}";' for a, b in edges]
        return "\n".join([*lines, "}"])
    if fmt == "mermaid":
        index = {i: f"n{n}" for n, i in enumerate(ids)}
        lines = ["graph LR"]
        lines += [f'  {index[i]}["{i}"]' for i in ids]
        lines += [f"  {index[a]} --> {index[b]}" for a, b in edges]
        return "\n".join(lines)
    lines = []
    for i in ids:
        t = ws.targets[i]
        deps = sorted(g.successors(i))
        line = f"{i}  ({_builder(ws, i)}, {ws.rel(t.dir)})"
        lines.append(line + (f"\n    -> {', '.join(deps)}" if deps else ""))
    return "\n".join(lines)


def _builder(ws: Workspace, target_id: str) -> str:
    t = ws.targets[target_id]
    return t.builder or ("image" if t.kind == "image" else "library")


def _node_json(ws: Workspace, target_id: str) -> dict:
    t = ws.targets[target_id]
    return {
        "id": t.id, "name": t.name, "kind": t.kind, "builder": t.builder, "dir": ws.rel(t.dir),
        "manifest": ws.rel(t.manifest), "version": t.version, "features": sorted(t.features),
        "deps": sorted(t.deps),
    }

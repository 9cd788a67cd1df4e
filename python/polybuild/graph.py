"""The target graph: an edge from each target to each target it depends on.

Build and run walk it as plain dicts, because importing networkx costs more than a small cached build. The same
graph as a networkx DiGraph (`TargetGraph.to_networkx`) is what the Python API hands out and what `affected` and
`polybuild graph` work on.
"""

from __future__ import annotations

import heapq
import json
from typing import TYPE_CHECKING

from polybuild.support.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    import networkx as nx

    from polybuild.workspace import Workspace


class TargetGraph:
    """Each target's direct dependencies, sorted; acyclic once `build_graph` returned it. Some edges are
    source-only: the dependent compiles that target from source (a Cargo path dependency), so the target's files
    are its inputs and a change there affects it, but no build of the target has to run first."""

    def __init__(self, deps: dict[str, list[str]], source_only: dict[str, frozenset[str]] | None = None) -> None:
        self.deps = deps
        self._source_only = source_only or {}

    def successors(self, node: str) -> list[str]:
        """The targets `node` depends on directly."""
        return self.deps[node]

    def source_only(self, node: str, dep: str) -> bool:
        """Whether `node` needs only the sources of its dependency `dep`, not its artifacts."""
        return dep in self._source_only.get(node, ())

    def needs(self, roots: Iterable[str]) -> set[str]:
        """The roots and the targets whose builds they need: the closure without the targets reached only through
        source-only edges. The search goes on past those (what a crate's build needs, compiling it needs too)."""
        needed: set[str] = set()
        visited: set[str] = set()
        stack = [(node, True) for node in roots]
        while stack:
            node, built = stack.pop()
            if built:
                needed.add(node)
            if node not in visited:
                visited.add(node)
                stack.extend((dep, not self.source_only(node, dep)) for dep in self.deps[node])
        return needed

    def closure(self, roots: Iterable[str]) -> set[str]:
        """The roots and everything they depend on."""
        return reach(roots, lambda node: self.deps[node])

    def dependents(self, roots: Iterable[str]) -> set[str]:
        """The roots and every target depending on them, at any depth."""
        users: dict[str, list[str]] = {}
        for node, deps in self.deps.items():
            for dep in deps:
                users.setdefault(dep, []).append(node)
        return reach(roots, lambda node: users.get(node, ()))

    def order(self, nodes: set[str]) -> list[str]:
        """Dependencies first, ties broken by id so the order is stable.

        Kahn's algorithm from the dependents' side, taking the largest id first, then reversed: the order
        networkx's `lexicographical_topological_sort` gave with `_reverse_key`, kept so outputs do not change."""
        indegree = dict.fromkeys(nodes, 0)
        for node in nodes:
            for dep in self.deps[node]:
                if dep in indegree:
                    indegree[dep] += 1
        ready = [(_reverse_key(n), n) for n, d in indegree.items() if d == 0]
        heapq.heapify(ready)
        dependents_first = []
        while ready:
            _, node = heapq.heappop(ready)
            dependents_first.append(node)
            for dep in self.deps[node]:
                if dep in indegree:
                    indegree[dep] -= 1
                    if indegree[dep] == 0:
                        heapq.heappush(ready, (_reverse_key(dep), dep))
        return dependents_first[::-1]

    def to_networkx(self) -> nx.DiGraph:
        """The same graph as a networkx DiGraph (nodes in workspace order, edges in sorted order)."""
        import networkx as nx

        g = nx.DiGraph()
        g.add_nodes_from(self.deps)
        g.add_edges_from((node, dep) for node, deps in self.deps.items() for dep in deps)
        return g

    def find_cycle(self) -> list[str] | None:
        """One cycle as [a, b, ..., a], or None: a depth-first search, nodes and edges in order."""
        state: dict[str, int] = {}  # 1: on the current path, 2: finished
        for start in self.deps:
            if start in state:
                continue
            path = [start]
            pending = [iter(self.deps[start])]
            state[start] = 1
            while pending:
                dep = next(pending[-1], None)
                if dep is None:
                    state[path.pop()] = 2
                    pending.pop()
                elif state.get(dep) == 1:
                    return [*path[path.index(dep):], dep]
                elif dep not in state:
                    state[dep] = 1
                    path.append(dep)
                    pending.append(iter(self.deps[dep]))
        return None


def build_graph(ws: Workspace) -> TargetGraph:
    """The dependency graph; a cycle is an error that prints the cycle."""
    graph = TargetGraph({t.id: sorted(t.deps) for t in ws.targets.values()},
                        {t.id: frozenset(t.source_deps) for t in ws.targets.values() if t.source_deps})
    cycle = graph.find_cycle()
    if cycle:
        raise UserError(f"dependency cycle: {' -> '.join(cycle)}", hint="remove one of these dependencies")
    return graph


def _reverse_key(node: str) -> str:
    # The dependents-first pass takes the smallest key first; reversing its result must still give sorted ties.
    return "".join(chr(0x10FFFF - ord(c)) for c in node)


def render(ws: Workspace, graph: TargetGraph, nodes: set[str], fmt: str) -> str:
    """The graph as text, json, dot or mermaid."""
    ids = graph.order(nodes)
    selected = graph.to_networkx().subgraph(nodes)
    edges = sorted(selected.edges)
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
        deps = sorted(selected.successors(i))
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


def reach(roots: Iterable[str], step: Callable[[str], Iterable[str]]) -> set[str]:
    """The roots and every node `step` leads to from them, at any depth (over targets or tasks alike)."""
    selected: set[str] = set()
    stack = list(roots)
    while stack:
        node = stack.pop()
        if node not in selected:
            selected.add(node)
            stack.extend(step(node))
    return selected

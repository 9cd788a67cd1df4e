"""The import-free target graph against networkx, which it replaces on the build path."""

from __future__ import annotations

import random

import networkx as nx
import pytest

from polybuild.graph import TargetGraph, _reverse_key


def random_dag(rng: random.Random, n: int) -> TargetGraph:
    names = [f"{rng.choice(['py', 'go', 'rust'])}:{rng.choice(['a', 'ab', 'b', 'x-y'])}{i}" for i in range(n)]
    rng.shuffle(names)
    deps = {name: sorted(rng.sample(names[:i], min(i, rng.randint(0, 3)))) for i, name in enumerate(names)}
    return TargetGraph(deps)


@pytest.mark.parametrize("seed", range(30))
def test_order_closure_and_export_match_networkx(seed):
    rng = random.Random(seed)
    graph = random_dag(rng, rng.randint(1, 40))
    digraph = graph.to_networkx()
    nodes = set(rng.sample(sorted(graph.deps), rng.randint(1, len(graph.deps))))
    expected = list(reversed(list(nx.lexicographical_topological_sort(digraph.subgraph(nodes), key=_reverse_key))))
    assert graph.order(nodes) == expected
    roots = sorted(nodes)[:3]
    assert graph.closure(roots) == set(roots).union(*(nx.descendants(digraph, r) for r in roots))
    assert list(digraph.nodes) == list(graph.deps)
    assert graph.find_cycle() is None


def test_find_cycle_names_one_cycle():
    graph = TargetGraph({"a": ["b"], "b": ["c"], "c": ["d", "e"], "d": [], "e": ["b"]})
    assert graph.find_cycle() == ["b", "c", "e", "b"]
    assert TargetGraph({"a": ["a"]}).find_cycle() == ["a", "a"]


def test_needs_passes_source_only_edges_but_keeps_what_lies_behind_them():
    # wheel -> (source) llm -> (source) runtime; llm -> (a declared build dep) tool; runtime is also a build dep of
    # the image, so it is needed there.
    graph = TargetGraph({"wheel": ["llm"], "llm": ["runtime", "tool"], "runtime": [], "tool": [],
                         "image": ["runtime", "wheel"]},
                        {"wheel": frozenset({"llm"}), "llm": frozenset({"runtime"})})
    assert graph.needs(["wheel"]) == {"wheel", "tool"}
    assert graph.needs(["image"]) == {"image", "wheel", "runtime", "tool"}
    assert graph.closure(["wheel"]) == {"wheel", "llm", "runtime", "tool"}  # what `affected` and `graph` walk
    assert graph.source_only("wheel", "llm") and not graph.source_only("image", "wheel")

"""The package's import graph stays layered: no module imports one that
imports it back, directly or around a loop (``benchmarks/structure.py``
prints the whole picture, with the line counts)."""

from __future__ import annotations

from benchmarks import structure


def test_no_module_imports_another_that_imports_it_back() -> None:
    edges = structure.graph()
    assert {"_life", "_batch", "_client", "_functions", "simulator", "video"} <= set(edges)  # the whole package read
    assert "_polling" in edges["_life"] and "_life" in edges["_batch"]  # imports are found
    assert structure.circles(edges) == []  # floors come from the imports: without a circle, none points up

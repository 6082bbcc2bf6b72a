"""The shape of the package: its import graph and its size, beside the targets.

Reads the source only (``ast``): every ``import`` of one of the package's
modules by another counts, wherever it stands (inside a function or under
``TYPE_CHECKING`` included). A module's floor is one above the highest floor
it imports, so an import "back up" is one into a module on the same floor or
above; with no circle there is none. Lines are ``wc -l`` lines (blank lines,
docstrings and comments included). The core is the library without its
simulator (``simulator/``) and without the optional transparent-clip part
(``video.py``, ``_keying.py``).

    python benchmarks/structure.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Dict, List, Set

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as common

PACKAGE = common.REPO / "aistudios_chromakey"
OPTIONAL = {"video", "_keying"}
CORE_LINES, SIMULATOR_LINES, LIFE_LINES = 4_600, 1_500, 220


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts) or "__init__"


def imports(path: Path, known: Set[str]) -> Set[str]:
    """The package's modules that ``path`` imports, by their names in ``known``."""
    here = module_name(path)
    package = [] if here == "__init__" else here.split(".")[: None if path.name == "__init__.py" else -1]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            stems = [alias.name for alias in node.names]
            names: List[str] = []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                stems = ["aistudios_chromakey." + ".".join(base + ([node.module] if node.module else []))]
            else:
                stems = [node.module or ""]
            names = [alias.name for alias in node.names]
        else:
            continue
        for stem in stems:
            if stem.strip(".") != "aistudios_chromakey" and not stem.startswith("aistudios_chromakey."):
                continue
            inner = stem.strip(".").removeprefix("aistudios_chromakey").strip(".")
            candidates = [f"{inner}.{name}".strip(".") for name in names]
            whole = inner or "__init__"
            found.update(c for c in candidates if c in known)
            if not any(c in known for c in candidates) and whole in known:
                found.add(whole)
    found.discard(here)
    return found


def graph() -> Dict[str, Set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    known = {module_name(path) for path in paths}
    return {module_name(path): imports(path, known) for path in paths}


def circles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    found: List[List[str]] = []

    def visit(name: str) -> None:
        index[name] = low[name] = len(index)
        stack.append(name)
        for other in sorted(edges[name]):
            if other not in index:
                visit(other)
                low[name] = min(low[name], low[other])
            elif other in stack:
                low[name] = min(low[name], index[other])
        if low[name] == index[name]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == name:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for name in sorted(edges):
        if name not in index:
            visit(name)
    return found


def floors(edges: Dict[str, Set[str]]) -> Dict[str, int]:
    """Each module's floor: 1 for one that imports none, else one above its highest import."""
    floor: Dict[str, int] = {}

    def place(name: str, seen: Set[str]) -> int:
        if name not in floor:
            below = [place(other, seen | {name}) for other in edges[name] if other not in seen | {name}]
            floor[name] = 1 + max(below, default=0)
        return floor[name]

    for name in edges:
        place(name, set())
    return floor


def lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def main() -> int:
    common.options(__doc__)
    edges = graph()
    floor = floors(edges)
    up = sorted(f"{a} -> {b}" for a, targets in edges.items() for b in targets if floor[b] >= floor[a])
    found = circles(edges)
    core = [p for p in PACKAGE.glob("*.py") if p.stem not in OPTIONAL]
    core_lines = sum(lines(p) for p in core)
    simulator_lines = sum(lines(p) for p in (PACKAGE / "simulator").glob("*.py"))
    life_lines = lines(PACKAGE / "_life.py")
    rows = [
        ["modules (core, optional, simulator)", f"{len(core)}, {len(OPTIONAL)}, {len(edges) - len(core) - 2}", ""],
        ["import circles", len(found), common.verdict(not found)],
        ["imports back up the floors", len(up), common.verdict(not up)],
        [f"core lines (target <= {CORE_LINES:,})", f"{core_lines:,}", common.verdict(core_lines <= CORE_LINES)],
        [
            f"simulator lines (target <= {SIMULATOR_LINES:,})",
            f"{simulator_lines:,}",
            common.verdict(simulator_lines <= SIMULATOR_LINES),
        ],
        ["`_life.py` lines (about 200)", life_lines, common.verdict(life_lines <= LIFE_LINES)],
    ]
    print(common.table(["measure", "figure", "target"], rows))
    if found or up:
        print("\n" + "\n".join([" circle: " + " <-> ".join(group) for group in found] + [" up: " + u for u in up]))
    largest = sorted(core, key=lines, reverse=True)[:5]
    print("\nLargest core modules: " + ", ".join(f"`{p.name}` {lines(p)}" for p in largest) + ".")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The layers of docs/ARCHITECTURE.md ("## Layers") hold for every module of fl1_core.

The table there is the map: one row per layer, top layer first; a name is a module or a package (covering every
module under it) relative to ``fl1_core`` (``fl1_core`` itself is the package's ``__init__``). Every import counts,
at any depth (imports inside functions and ``TYPE_CHECKING`` blocks too). The rules:

- every module is covered by exactly one name of the table;
- a module imports only modules of its own layer or of layers below;
- in a layer marked *independent*, a name never imports another name of the same layer;
- no import cycle between modules (Python would cope with some; a reader should not have to).

Names of the table that match no module are tolerated (a module about to be added or just removed elsewhere).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import fl1_core

PKG = Path(fl1_core.__file__).parent
DOC = PKG.parent / "docs" / "ARCHITECTURE.md"
WHERE = "add it (or its package) to a row of the table under '## Layers' in docs/ARCHITECTURE.md"


@dataclass(frozen=True)
class Layer:
    rank: int  # 0 = the bottom layer
    name: str
    names: tuple[str, ...]
    independent: bool


def read_layers(text: str) -> list[Layer]:
    """The rows of the first table under '## Layers' (top first) → layers ranked from the bottom."""
    section = text.split("\n## Layers", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")][2:]  # header and rule line
    assert rows, "docs/ARCHITECTURE.md: no table under '## Layers'"
    layers = []
    for rank, row in enumerate(reversed(rows)):
        cells = [c.strip() for c in row.strip("|").split("|")]
        layers.append(Layer(rank, cells[0], tuple(re.findall(r"`([^`]+)`", cells[1])),
                            "independent" in (cells[2] if len(cells) > 2 else "")))
    return layers


def module_names() -> dict[str, Path]:
    """``fl1_core.x.y`` → file, for every module and package ``__init__`` under fl1_core."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported fl1_core module, line) for every import statement of a file, relative ones resolved; ``from P
    import n`` names the module ``P.n`` when that is a module, else ``P``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]

    def existing(name: str) -> str:
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(existing(a.name), node.lineno) for a in node.names if a.name.split(".")[0] == "fl1_core"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "fl1_core":
                continue
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.append((full if full in modules else existing(target), node.lineno))
    return [(m, line) for m, line in found if m != module]


def place(module: str, layers: list[Layer]) -> list[tuple[Layer, str]]:
    """Every (layer, name) of the table that covers ``module``."""
    rel = module.removeprefix("fl1_core.") if module != "fl1_core" else "fl1_core"
    return [(layer, n) for layer in layers for n in layer.names
            if rel == n or (n != "fl1_core" and rel.startswith(n + "."))]


LAYERS = read_layers(DOC.read_text(encoding="utf-8"))
MODULES = module_names()


def test_every_module_is_in_exactly_one_layer():
    problems = []
    for module in MODULES:
        where = place(module, LAYERS)
        if not where:
            problems.append(f"{module} is in no layer: {WHERE}")
        elif len(where) > 1:
            listed = ", ".join(f"`{n}` ({layer.name})" for layer, n in where)
            problems.append(f"{module} is in more than one layer: {listed}")
    assert not problems, "\n".join(problems)


def test_imports_go_downwards_only():
    problems = []
    for module, path in MODULES.items():
        (mine, my_name), = place(module, LAYERS) or [(None, None)]
        if mine is None:
            continue  # reported by test_every_module_is_in_exactly_one_layer
        for target, line in imports_of(module, path, MODULES):
            theirs = place(target, LAYERS)
            if len(theirs) != 1:
                continue
            (layer, name), = theirs
            if layer.rank > mine.rank:
                problems.append(f"{path.relative_to(PKG.parent)}:{line}: {module} (layer '{mine.name}') imports "
                                f"{target} (layer '{layer.name}', above it)")
            elif layer.rank == mine.rank and mine.independent and name != my_name:
                problems.append(f"{path.relative_to(PKG.parent)}:{line}: {module} imports {target}: `{my_name}` and "
                                f"`{name}` are independent (layer '{mine.name}')")
    assert not problems, "upward imports:\n" + "\n".join(problems)


def test_no_import_cycles():
    graph = {m: sorted({t for t, _ in imports_of(m, p, MODULES)}) for m, p in MODULES.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, "import cycles (break each by moving what both need into a lower module):\n" + "\n".join(
        " ↔ ".join(c) for c in cycles)


def test_the_checks_see_what_they_check(tmp_path):
    """The map reads as documented and the import reader resolves every form of import it meets."""
    names = {layer.name for layer in LAYERS}
    assert {"foundation", "training stages", "entry points"} <= names and LAYERS[0].name == "foundation"
    assert [layer.name for layer in LAYERS if layer.independent] == ["training stages"]
    assert len(MODULES) > 100 and {"fl1_core", "fl1_core.data.world.world_types", "fl1_core.decoding.latent_loop"} <= set(MODULES)
    found = {t for t, _ in imports_of("fl1_core.curation.probes", MODULES["fl1_core.curation.probes"], MODULES)}
    assert {"fl1_core.tokens", "fl1_core.answers", "fl1_core.data.collator", "fl1_core.curation.config",
            "fl1_core.judge.client"} <= found  # `from .. import tokens as T`, relative, sibling, lazy in a function
    probe = tmp_path / "probe.py"
    probe.write_text("from .. import answers\nfrom ..data.world import world_types\nimport fl1_core.rl.config\n"
                     "def f():\n    from fl1_core.rl import group_advantages\n")
    assert sorted(imports_of("fl1_core.audit.probe", probe, MODULES)) == [
        ("fl1_core.answers", 1), ("fl1_core.data.world.world_types", 2), ("fl1_core.rl", 5), ("fl1_core.rl.config", 3)]
    (low, _), = place("fl1_core.data.world.world_types", LAYERS)
    (high, _), = place("fl1_core.rl.rollout", LAYERS)
    assert low.rank < high.rank

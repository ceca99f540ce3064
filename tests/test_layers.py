"""Layers that go one way (issue 28): every `stillmotion` import, module-level or inside a function (a lazy import
is still a dependency), points to the importer's own layer or one below it, and no modules import each other
round in a circle. Read from the source with `ast`, so nothing is imported to check it."""

import ast
from pathlib import Path

import stillmotion

PACKAGE = Path(stillmotion.__file__).parent

# Bottom to top; a module may import from its own layer and the layers below it. A layer is named by the first
# part after `stillmotion.` (a subpackage or a top-level module); "" is the package itself, whose `load()` opens
# a pipeline.
LAYERS = [
    {"cond", "fieldtypes", "atomic", "flow", "version", "charts"},  # small modules that import no other layer
    {"models"},
    {"diffusion"},
    {"checkpoint"},  # checks a config.json against the U-Net's config and the parameterizations
    {"data"},
    {"pipelines"},
    {"train"},
    {"eval"},
    {"experiments"},
    {"cli", "demo", ""},
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package: dotted name -> file (a package is its __init__.py)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(source: str, module: str, known: set[str], *, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, module) for every import of a `stillmotion` module anywhere in `source`, function bodies included.

    `from a import b` is an import of module a.b where that module exists, else of a; any other name is resolved
    to the longest known module that starts it.
    """
    def known_prefix(name: str) -> str:
        while name not in known and "." in name:
            name = name.rpartition(".")[0]
        return name

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, known_prefix(a.name)) for a in node.names if a.name.split(".")[0] == "stillmotion"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the importer's package, one level up per extra dot
                base = module.split(".")[: len(module.split(".")) - (not is_package) - (node.level - 1)]
                source_module = ".".join(base + ([node.module] if node.module else []))
            else:
                source_module = node.module or ""
            if source_module.split(".")[0] != "stillmotion":
                continue
            for alias in node.names:
                sub = f"{source_module}.{alias.name}"
                found.append((node.lineno, sub if sub in known else known_prefix(source_module)))
    return list(dict.fromkeys(found))  # `from a import b, c`: one arrow


def layer_name(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def import_graph(package: Path = PACKAGE) -> dict[str, list[tuple[int, str]]]:
    """module -> [(line, imported module)] for the whole package."""
    names = module_names(package)
    known = set(names)
    return {name: imports(path.read_text(), name, known, is_package=path.name == "__init__.py")
            for name, path in names.items()}


def upward_arrows(graph: dict[str, list[tuple[int, str]]], paths: dict[str, Path]) -> list[str]:
    """One line per import that points to a higher layer."""
    problems = []
    for module, targets in graph.items():
        here = layer_name(module)
        for line, target in targets:
            there = layer_name(target)
            if LAYER[there] > LAYER[here]:
                path = paths[module].relative_to(PACKAGE.parent).as_posix()
                problems.append(f"{path} imports {target} ({here or 'stillmotion'} -> {there or 'stillmotion'} "
                                f"goes up), line {line}")
    return problems


def strongly_connected(edges: dict[str, list[str]]) -> list[set[str]]:
    """Groups of more than one module that all reach each other (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = {stack.pop()}
            while v not in group:
                group.add(stack.pop())
            on_stack.difference_update(group)
            if len(group) > 1:
                groups.append(group)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return groups


def shortest_circle(edges: dict[str, list[str]], group: set[str]) -> list[str]:
    """The shortest way round a strongly connected group, from its first module back to it (breadth first)."""
    start = min(group)
    paths, queue = {start: [start]}, [start]
    while queue:
        v = queue.pop(0)
        for w in edges[v]:
            if w == start:
                return paths[v] + [start]
            if w in group and w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    raise AssertionError(f"{group} is not strongly connected")


def cycles(graph: dict[str, list[tuple[int, str]]]) -> list[list[str]]:
    """One circle of imports (a -> b -> ... -> a) per group of modules that import each other."""
    edges = {m: sorted({t for _, t in targets if t != m}) for m, targets in graph.items()}
    return [shortest_circle(edges, group) for group in strongly_connected(edges)]


def test_every_module_has_a_layer():
    unplaced = sorted({layer_name(m) for m in module_names()} - set(LAYER))
    assert not unplaced, f"place {unplaced} in LAYERS (tests/test_layers.py), bottom to top"


def test_imports_point_down():
    problems = upward_arrows(import_graph(), module_names())
    assert not problems, "imports that go up a layer; move the code they need down instead:\n" + "\n".join(problems)


def test_no_import_cycles():
    circles = cycles(import_graph())
    assert not circles, "modules that import each other:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_the_walker_sees_lazy_relative_and_submodule_imports():
    known = {"stillmotion", "stillmotion.checkpoint", "stillmotion.pipelines", "stillmotion.pipelines.text_to_video",
             "stillmotion.train", "stillmotion.train.loop", "stillmotion.data", "stillmotion.data.folder"}
    source = '''
import torch
from stillmotion import checkpoint, __version__
from . import folder

def load(path):
    from stillmotion.train.loop import train
    import stillmotion.pipelines.text_to_video as t2v
    return train, t2v
'''
    found = imports(source, "stillmotion.data.preprocess", known)
    assert found == [(3, "stillmotion.checkpoint"), (3, "stillmotion"), (4, "stillmotion.data.folder"),
                     (7, "stillmotion.train.loop"), (8, "stillmotion.pipelines.text_to_video")]
    graph = {"stillmotion.data.preprocess": found, "stillmotion.data.folder": [(1, "stillmotion.data.preprocess")]}
    paths = {"stillmotion.data.preprocess": PACKAGE / "data" / "preprocess.py"}
    assert upward_arrows(graph, paths) == [
        "stillmotion/data/preprocess.py imports stillmotion (data -> stillmotion goes up), line 3",
        "stillmotion/data/preprocess.py imports stillmotion.train.loop (data -> train goes up), line 7",
        "stillmotion/data/preprocess.py imports stillmotion.pipelines.text_to_video (data -> pipelines goes up), "
        "line 8"]
    assert cycles(graph) == [["stillmotion.data.folder", "stillmotion.data.preprocess", "stillmotion.data.folder"]]

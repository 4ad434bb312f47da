"""The import graph of the package keeps the layering of docs/architecture.md (checked with ast)."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "infini_attention"

# The core, bottom to top: a core part imports only parts of the same or a lower rank.
CORE_RANK = {"utils": 0, "safe_files": 0, "state": 0, "data": 1, "ops": 1, "modules": 2, "layers": 3, "models": 4}
CORE_RANK["generate"] = 5
LEAVES = {"hf", "train", "eval", "cli"}
ALIASES = {"checkpoint", "tasks", "stretch", "distributed"}  # older module names that re-export moved code
FORBIDDEN = {  # leaf -> what it must not import
    "train": {"hf", "cli"},
    "hf": {"cli"},
    "data": {"eval", "train", "hf", "cli"},
}


def part_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def import_graph() -> dict[str, set[str]]:
    """part -> the parts it imports (anywhere in its files, function bodies included)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        own = part_of(module)
        deps = graph.setdefault(own, set())
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            deps.update(part_of(n) for n in names if n.startswith("infini_attention."))
        deps.discard(own)
    return graph


def test_the_core_imports_only_lower_layers_and_no_leaf():
    graph = import_graph()
    for part, rank in CORE_RANK.items():
        for dep in graph.get(part, set()):
            assert dep not in LEAVES | ALIASES, f"core part {part} imports the leaf {dep}"
            assert dep in CORE_RANK, f"{part} imports {dep}, which is not part of the core"
            assert CORE_RANK[dep] <= rank and not (part == "data" and dep != "utils"), f"{part} imports {dep}"


def test_leaves_keep_their_own_rules_and_import_no_circle():
    graph = import_graph()
    for part, banned in FORBIDDEN.items():
        assert not graph.get(part, set()) & banned, f"{part} imports {sorted(graph[part] & banned)}"
    for alias in ALIASES:  # only the package's own __init__ or tests may use the old names
        users = [p for p, deps in graph.items() if alias in deps and p != "__init__"]
        assert not users, f"{users} import the alias module {alias}; import where the code lives now"
    leaves = LEAVES | {"data"}

    def reaches(start: str, goal: str, seen: set) -> bool:
        for dep in graph.get(start, set()) & leaves:
            if dep == goal or (dep not in seen and reaches(dep, goal, seen | {dep})):
                return True
        return False

    for leaf in leaves:
        assert not reaches(leaf, leaf, {leaf}), f"{leaf} imports itself through a circle of leaf packages"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    """A lazy import in a function body counts: the rule is about what runs, not where it is written."""
    graph = import_graph()
    assert "hf" in graph["cli"], "cli/convert.py imports hf/ inside its functions"

"""The layer rule of docs/architecture.md, checked on every import in src/ (function-local ones included): no
import from a higher layer, no cycle, no `_private` name taken from another module, every module in a layer."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
OPTIONAL = {"transformers", "datasets", "matplotlib", "sklearn", "scipy", "tensorboard", "wandb"}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((SRC / "electra").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _layers() -> dict[str, int]:
    """module pattern -> layer number, from the table in docs/architecture.md."""
    table = {}
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0].isdigit():
            for name in re.findall(r"`([^`]+)`", cells[2]):
                table[name] = int(cells[0])
    return table


def layer_of(module: str, table: dict[str, int]) -> int | None:
    rel = module.removeprefix("electra").lstrip(".") or "__init__"
    for pattern, layer in table.items():
        if rel == pattern or (pattern.endswith(".*") and (rel == pattern[:-2] or rel.startswith(pattern[:-1]))):
            return layer
    return None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, int, list[str]]]:
    """(imported electra module, line, names taken) for every import statement in the file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, []) for a in node.names if a.name.split(".")[0] == "electra"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base.split(".")[0] != "electra":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in modules:  # `from electra import io`: the module io
                    out.append((sub, node.lineno, []))
                else:
                    out.append((base, node.lineno, [alias.name]))
    return out


def _graph() -> tuple[dict[str, Path], dict[str, list[tuple[str, int, list[str]]]]]:
    modules = _modules()
    return modules, {m: _imports(m, p, modules) for m, p in modules.items()}


def test_every_module_belongs_to_one_layer_of_the_architecture_page():
    table = _layers()
    assert len(set(table.values())) >= 5, "docs/architecture.md: the layer table was not found"
    missing = [m for m in _modules() if layer_of(m, table) is None]
    assert not missing, f"modules in no layer of docs/architecture.md: {missing}"
    listed = [p for p in table if not any(layer_of(m, {p: 0}) is not None for m in _modules())]
    assert not listed, f"docs/architecture.md lists modules that do not exist: {listed}"


def test_no_module_imports_from_a_higher_layer():
    table = _layers()
    modules, graph = _graph()
    bad = []
    for module, imports in graph.items():
        for target, line, _ in imports:
            if layer_of(target, table) > layer_of(module, table):
                bad.append(f"{modules[module].relative_to(ROOT)}:{line} {module} -> {target}")
    assert not bad, "imports against the layer rule:\n" + "\n".join(bad)


def test_the_import_graph_has_no_cycle():
    modules, graph = _graph()
    edges = {m: {t for t, _, _ in imports if t != m and t in modules} for m, imports in graph.items()}
    for m in edges:  # importing electra.a.b first runs electra.a's __init__ (from outside that package)
        for t in list(edges[m]):
            parts = t.split(".")
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if parent in modules and parent != m and not m.startswith(parent + "."):
                    edges[m].add(parent)
    edges = {m: sorted(ts) for m, ts in edges.items()}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in edges[m]:
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t) :] + [t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in edges:
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_private_name_is_imported_from_another_module():
    modules, graph = _graph()
    bad = [
        f"{modules[m].relative_to(ROOT)}:{line} {name} from {t}"
        for m, imports in graph.items()
        for t, line, names in imports
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not bad, "private names imported across modules:\n" + "\n".join(bad)


HELP_SCRIPT = """
import sys
from electra.cli import main
try:
    main([sys.argv[1], "--help"])
except SystemExit:
    pass
print("HEAVY", sorted(m for m in ("torch", "scipy", "sklearn", "transformers", "datasets") if m in sys.modules))
"""


@pytest.mark.parametrize(
    "command", ["pretrain", "finetune", "bench", "export", "report", "quickstart", "prepare", "score"]
)
def test_help_imports_no_torch_scipy_or_sklearn(command):
    """`electra CMD --help` and argument errors answer at once: parsing imports none of the heavy libraries."""
    env = {"PYTHONPATH": str(SRC), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    done = subprocess.run(
        [sys.executable, "-c", HELP_SCRIPT, command], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "HEAVY []" in done.stdout, done.stdout[-300:]

"""Every third-party module the package imports is installed by `pip install cityweave`.

The README's first command installs the base dependencies only (no test extras); a module that
the tests happen to install (httpx once) would pass every test and break `cityweave demo` on a
fresh machine. Imports guarded by ``except ImportError`` (optional parts) are allowed.
"""

from __future__ import annotations

import ast
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

SRC = Path(__file__).resolve().parents[1] / "src" / "cityweave"


def _guarded(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                or isinstance(h.type, ast.Tuple) and any(
                    isinstance(e, ast.Name) and e.id in ("ImportError", "ModuleNotFoundError") for e in h.type.elts)
                for h in node.handlers):
            return True
    return False


def imported_top_level_modules() -> dict[str, str]:
    """{top-level module: first file importing it} for unguarded absolute imports."""
    found: dict[str, str] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            if _guarded(node, parents):
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "cityweave" and top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, str(path.relative_to(SRC.parent)))
    return found


def _closure(requirements: list[str]) -> set[str]:
    """Distribution names installed by these requirements, recursively (markers evaluated, no extras
    beyond the ones named)."""
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = req.name.lower().replace("_", "-")
        key = f"{name}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        for sub in dist.requires or []:
            sub_req = Requirement(sub)
            if sub_req.marker is None or sub_req.marker.evaluate({"extra": ""}):
                todo.append((sub_req, ""))
            else:
                for wanted in req.extras:
                    if sub_req.marker.evaluate({"extra": wanted}):
                        todo.append((sub_req, wanted))
    return {k.split("[")[0] for k in seen}


def test_every_import_is_a_base_dependency() -> None:
    base = metadata.distribution("cityweave").requires or []
    base = [r for r in base if Requirement(r).marker is None or Requirement(r).marker.evaluate({"extra": ""})]
    installed_by_default = _closure(base)
    providers = metadata.packages_distributions()
    missing = {}
    for module, where in imported_top_level_modules().items():
        dists = {d.lower().replace("_", "-") for d in providers.get(module, [])}
        assert dists, f"{module} (imported in {where}) is not installed at all"
        if not dists & installed_by_default:
            missing[module] = (where, sorted(dists))
    assert not missing, f"imported but not installed by `pip install cityweave`: {missing}"

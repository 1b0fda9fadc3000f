"""The house's arrows point one way (docs/architecture.md): no import cycle inside the package,
no underscored name imported across modules, and the integrations use only public attributes
of core objects."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mysqlpool_ext"
INTEGRATIONS = ("flask", "django", "cli", "metrics", "demo", "diagnostics")
#: Private helpers a module may import from a sibling of the same layer (documented there).
ALLOWED_PRIVATE = {("pool", "connection", "_RawConnection")}
#: Frameworks' own private attributes we rely on, each for a documented reason: Django's
#: ``HttpResponse._resource_closers`` is how a response runs code when the server closes it (the
#: only hook that fires after a streamed body is consumed, in WSGI and ASGI alike).
FRAMEWORK_PRIVATE = {"_resource_closers"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts) or "__init__"


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module relative to the package, names) for every ``from .x import ...``,
    including those inside functions (a lazy import is still an arrow)."""
    tree = ast.parse(path.read_text())
    here = module_name(path).split(".")
    package_parts = here[:-1] if path.name != "__init__.py" else here
    found = []
    type_only = {
        id(n)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for n in ast.walk(block)
    }
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package_parts[: len(package_parts) - (node.level - 1)]
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.append((target or "__init__", [a.name for a in node.names]))
    return found


def graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        edges.setdefault(name, set())
        for target, names in imports(path):
            for n in names:
                sub = f"{target}.{n}" if target != "__init__" else n
                if (PACKAGE / Path(*sub.split("."))).with_suffix(".py").exists():
                    edges[name].add(sub)
            edges[name].add(target)
    return edges


def test_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if nxt == node or nxt == "__init__" or nxt.endswith(".__init__"):
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    # A package's __init__ may re-export its children; a child importing its package's
    # __init__ is not counted (those edges were skipped above).
    assert cycles == []


def test_no_private_name_crosses_a_module_boundary() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        here = module_name(path)
        for target, names in imports(path):
            for n in names:
                module = (PACKAGE / Path(*target.split(".")) / f"{n}.py").exists() or (
                    target == "__init__" and (PACKAGE / f"{n}.py").exists()
                )
                private = n.startswith("_") and not n.startswith("__") and not module
                if private and (here, target.split(".")[-1], n) not in ALLOWED_PRIVATE:
                    offenders.append(f"{here}: from {target} import {n}")
    assert offenders == []


def _overrides_framework_hook(module: str, node: ast.Attribute) -> bool:
    """A Django database backend subclasses Django's wrapper and must call the protected hooks it
    overrides (``super()._close()``, ``BaseDatabaseWrapper._rollback(self)``): that is Django's
    backend API, not reaching into another object."""
    if not module.startswith("django.backend"):
        return False
    value = node.value
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
        return value.func.id == "super"
    return isinstance(value, ast.Name) and value.id.startswith("Base")


def test_integrations_touch_no_private_attribute_of_other_objects() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        here = module_name(path)
        if not here.startswith(INTEGRATIONS):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
                and node.attr not in FRAMEWORK_PRIVATE
                and not _overrides_framework_hook(here, node)
            ):
                offenders.append(f"{here}:{node.lineno}: .{node.attr}")
    assert offenders == []

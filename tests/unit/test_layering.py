"""Imports go one way (DESIGN.md §2): server -> store / live / relay glue -> pure packages -> errors, plan.

- The pure packages (isobmff, manifest, rewrite, package, mkv, and plan, errors) load neither aiohttp nor any
  module of server/ or store/ (checked in a fresh interpreter, so whatever they import transitively counts), and
  name none of them in their source (checked statically, so a function-level import counts too).
- Reading the config (`import origin_proxy.config`) loads neither construct, numpy nor aiohttp.
- No import cycle anywhere in origin_proxy/: the graph of every import statement (module level or inside a
  function) between our modules has no strongly connected component of more than one module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "origin_proxy"
PURE = ("isobmff", "manifest", "rewrite", "package", "mkv", "plan", "errors")
GLUE = ("origin_proxy.server", "origin_proxy.store")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE_ROOT.rglob("*.py")}


def _imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """Our modules that `path` imports, by any import statement; `from pkg import mod` counts as importing mod."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            targets = [f"{prefix}.{alias.name}" if f"{prefix}.{alias.name}" in known else prefix
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    known = _modules()
    return {name: _imports(name, path, known) for name, path in known.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def test_no_import_cycles_anywhere():
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_pure_packages_name_no_glue_module():
    graph = _graph()
    wrong = {name: sorted(t for t in targets if t.startswith(GLUE))
             for name, targets in graph.items()
             if name.count(".") and name.split(".")[1] in PURE and any(t.startswith(GLUE) for t in targets)}
    assert wrong == {}


@pytest.mark.parametrize("pure", PURE)
def test_pure_package_loads_no_aiohttp_server_or_store(pure):
    names = [n for n in _modules() if n == f"origin_proxy.{pure}" or n.startswith(f"origin_proxy.{pure}.")]
    code = ("import importlib, sys\n"
            f"for name in {names!r}: importlib.import_module(name)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'aiohttp' or m.startswith(%r))\n"
            "print(bad); sys.exit(3 if bad else 0)\n") % (GLUE,)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def test_config_loads_no_construct_numpy_or_aiohttp():
    code = ("import sys, origin_proxy.config\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('construct', 'numpy', 'aiohttp'))\n"
            "print(bad[:5]); sys.exit(3 if bad else 0)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]


def test_only_server_imports_aiohttp_web():
    code = ("import sys, origin_proxy.store.moov, origin_proxy.store.cache, origin_proxy.remap, "
            "origin_proxy.store.source.upstream; sys.exit(3 if 'aiohttp.web' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0

"""What a census's key digests: the test module, the conftest files above it and every module
under the rootdir they import, transitively (read with ``ast``), and the plugin's own sources."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any


def conftest_paths(test_dir: Any, rootdir: Any) -> list[Any]:
    """The ``conftest.py`` files from ``rootdir`` down to ``test_dir`` (those that exist)."""
    from pathlib import Path

    d, root = Path(test_dir), Path(rootdir)
    dirs = [d]
    while d != root and d.parent != d and root in d.parents:
        d = d.parent
        dirs.append(d)
    return [p for p in (directory / "conftest.py" for directory in reversed(dirs)) if p.is_file()]


def _imported_names(tree: Any, package: str | None) -> list[str]:
    """Module names an ``ast`` tree imports (anywhere, function bodies too); for ``from a import
    b`` both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    import ast
    import importlib.util

    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if not package:
                    continue
                try:
                    base = importlib.util.resolve_name("." * node.level + base, package)
                except (ImportError, ValueError):
                    continue
            if base:
                names.append(base)
                names.extend(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _module_file(name: str) -> str | None:
    """The source file of module ``name``: from ``sys.modules``, else located by importlib's
    finders without importing anything (only when its parent package is already imported)."""
    import importlib.util
    import sys

    mod = sys.modules.get(name)
    if mod is not None:
        return getattr(mod, "__file__", None)
    parent = name.rpartition(".")[0]
    if parent and parent not in sys.modules:
        return None
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError, AttributeError):
        return None
    return spec.origin if spec is not None and spec.has_location else None


def import_closure(start: Iterable[Any], rootdir: Any, exclude: Iterable[Any] = ()) -> list[Any]:
    """``start`` and every Python file under ``rootdir`` they import, transitively (read with
    ``ast``: ``import helper``, ``from helper import N``, relative imports, imports inside
    functions), leaving out ``exclude`` directories and installed packages (site-packages).
    What a test imports from its own project decides what it does, so it is part of a census's
    key; imports by other means (``importlib``, ``pytest_plugins`` strings) are not seen."""
    import ast
    import sys
    from pathlib import Path

    root = Path(rootdir).resolve()
    skip = [Path(e).resolve() for e in exclude]
    by_file = {}
    for loaded in list(sys.modules.values()):
        f = getattr(loaded, "__file__", None)
        if isinstance(f, str):
            by_file[f] = loaded

    def wanted(path: Path) -> bool:
        if path.suffix != ".py" or (root not in path.parents and path != root):
            return False
        if any(s == path or s in path.parents for s in skip):
            return False
        return not {"site-packages", "dist-packages"} & set(path.parts)

    todo = [Path(p).resolve() for p in start]
    seen: dict[Path, None] = {}
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen[path] = None
        try:
            tree = ast.parse(path.read_bytes())
        except (OSError, SyntaxError, ValueError):
            continue
        mod = by_file.get(str(path))
        package = getattr(mod, "__package__", None) if mod is not None else None
        for name in _imported_names(tree, package):
            found = _module_file(name)
            if found:
                target = Path(found).resolve()
                if target not in seen and wanted(target):
                    todo.append(target)
    return sorted(seen)


def files_digest(paths: Iterable[Any]) -> str:
    """Digest of these files' paths and contents (a missing file counts as empty)."""
    from pathlib import Path

    h = hashlib.sha1()
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError:
            data = b""
        h.update(str(path).encode() + b"\0" + data + b"\0")
    return h.hexdigest()[:16]


_SOURCE_DIGEST: dict[str, str] = {}


def source_digest(*modules: str) -> str:
    """Digest of the source files of these packages (the model's code decides the census)."""
    import importlib
    from pathlib import Path

    key = ",".join(modules)
    if key not in _SOURCE_DIGEST:
        h = hashlib.sha1()
        for name in modules:
            mod = importlib.import_module(name)
            root = Path(getattr(mod, "__file__", "") or "").parent
            for path in sorted(root.rglob("*.py")):
                h.update(path.read_bytes())
        _SOURCE_DIGEST[key] = h.hexdigest()[:16]
    return _SOURCE_DIGEST[key]

"""The kernel-correspondence page: which model function mirrors which kernel function, in
which kernel file and series version, and which revision flags change its behaviour.

Read from the source, never imported: each model module's docstring names the kernel file (and
series version) it mirrors, each function's docstring says "Mirrors ``kernel_function``", and
the flags a function reads are its ``<x>.revision.<flag>`` attributes."""

from __future__ import annotations

import ast
import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from ..revisions import REVISIONS, Revision

MODEL = Path(__file__).resolve().parent.parent / "model"
#: Revision fields that are not behaviour flags.
NOT_FLAGS = {"name", "summary", "expect", "follows"}
_KERNEL_FILE = re.compile(r"\b((?:virt|mm|arch|include)/[\w/.-]+\.[ch])\b")
_VERSION = re.compile(r"RFC v2(?: patch(?:es)? \d+/\d+(?: and \d+/\d+)?)?|linux-next|in-place conversion v\d+|\bv8\b")
_NAMES = re.compile(r"``([^`]+)``")


@dataclass(frozen=True)
class Mirror:
    """One model function and the kernel code it mirrors."""

    model: str  # module.Class.function
    line: int
    kernel: tuple[str, ...]
    summary: str
    flags: tuple[str, ...]


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    summary: str
    kernel_files: tuple[str, ...]
    versions: tuple[str, ...]
    mirrors: tuple[Mirror, ...]


def _first_sentence(doc: str) -> str:
    text = " ".join(doc.split("\n\n")[0].split())
    return text


def _kernel_names(doc: str, params: set[str]) -> tuple[str, ...]:
    """The kernel names a docstring says it mirrors: the ``...`` names of its first sentence
    that starts with, or follows, "Mirrors"."""
    text = _first_sentence(doc)
    at = text.find("Mirrors")
    if at < 0:
        at = text.find("mirrors")
    part = text[at:] if at >= 0 else text
    part = re.split(r"(?<=[^.])[.;:](?:\s|$)", part, maxsplit=1)[0]
    return tuple(dict.fromkeys(n for n in _NAMES.findall(part) if n not in params and (n[0].isalpha() or n[0] in "_/")))


def _is_mirror(doc: str) -> bool:
    text = _first_sentence(doc)
    if re.search(r"\b[Mm]irrors\b", text):
        return True
    m = re.match(r"``([\w/*{},.\- >]+?)``", text)
    return bool(m and (re.fullmatch(r"[a-z_][a-z0-9_]*", m.group(1)) or "/" in m.group(1)))


def _flags(fn: ast.AST) -> tuple[str, ...]:
    names = {f.name for f in dataclasses.fields(Revision)} - NOT_FLAGS
    found = [
        node.attr for node in ast.walk(fn)
        if isinstance(node, ast.Attribute) and node.attr in names
        and isinstance(node.value, ast.Attribute) and node.value.attr == "revision"
    ]
    return tuple(dict.fromkeys(found))


def _visit(body: list[ast.stmt], prefix: str, mirrors: list[Mirror]) -> None:
    for node in body:
        if isinstance(node, ast.ClassDef):
            _visit(node.body, f"{prefix}{node.name}.", mirrors)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node) or ""
            if doc and _is_mirror(doc):
                params = {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
                mirrors.append(Mirror(f"{prefix}{node.name}", node.lineno, _kernel_names(doc, params),
                                      _first_sentence(doc), _flags(node)))


def scan(model_dir: Path = MODEL) -> list[ModuleInfo]:
    """Every model module with a docstring, and its functions whose docstrings mirror kernel code."""
    out = []
    for path in sorted(model_dir.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        doc = ast.get_docstring(tree) or ""
        mirrors: list[Mirror] = []
        _visit(tree.body, f"{path.stem}.", mirrors)
        out.append(ModuleInfo(
            path.stem, _first_sentence(doc),
            tuple(dict.fromkeys(_KERNEL_FILE.findall(doc.split("\n\n")[0]))),
            tuple(dict.fromkeys(_VERSION.findall(_first_sentence(doc)))),
            tuple(mirrors),
        ))
    return out


def flag_meaning(flag: str) -> str:
    """Which revisions set a flag (or, for a str field, which revisions have which value)."""
    values: dict[str, list[str]] = {}
    for rev in REVISIONS.values():
        values.setdefault(repr(getattr(rev, flag)), []).append(rev.name)
    if set(values) <= {"True", "False"}:
        on = values.get("True", [])
        return ", ".join(on) if on else "none"
    return "; ".join(f"{v.strip(chr(39))}: {', '.join(names)}" for v, names in values.items())


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def kernel_page(model_dir: Path = MODEL) -> str:
    """``docs/reference/kernel.md``."""
    from .pages import GENERATED

    modules = scan(model_dir)
    n = sum(len(m.mirrors) for m in modules)
    lines = [
        "# Kernel correspondence",
        "",
        GENERATED,
        "",
        "Which model function mirrors which kernel function. The model keeps the kernel's function "
        "names and order of operations, so `virt/kvm/guest_memfd.c` and `pytest_gmem/model/` can be "
        "read side by side. Each row comes from the function's docstring (\"Mirrors `...`\"); the "
        "kernel file and series version from its module's docstring; the *revision flags* are the "
        "`host.revision.<flag>` attributes the function reads, with the revisions that set them "
        f"([model.md](../model.md#revisions)). {n} functions in {sum(1 for m in modules if m.mirrors)} modules.",
        "",
        "## Revisions",
        "",
        "| revision | follows | uAPI | HugeTLB |",
        "|---|---|---|---|",
    ]
    lines += [f"| `{r.name}` | {_cell(r.follows)} | {r.abi} | {r.hugetlb} |" for r in REVISIONS.values()]
    for m in modules:
        if not m.mirrors:
            continue
        lines += ["", f"## `{m.name}.py`", "", _cell(m.summary), ""]
        facts = []
        if m.kernel_files:
            facts.append("kernel file: " + ", ".join(f"`{f}`" for f in m.kernel_files))
        facts.append("version: " + (", ".join(m.versions) if m.versions else "every revision (none named)"))
        lines += ["; ".join(facts) + ".", "", "| model | kernel | revision flags | what it does |", "|---|---|---|---|"]
        for f in m.mirrors:
            kernel = ", ".join(f"`{k}`" for k in f.kernel) or "-"
            flags = "; ".join(f"`{fl}` ({flag_meaning(fl)})" for fl in f.flags) or "-"
            lines.append(f"| `{f.model}` | {_cell(kernel)} | {_cell(flags)} | {_cell(f.summary)} |")
    return "\n".join(lines) + "\n"

"""``python -m faults``: list, parse, docs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import faults
from faults.__main__ import docs_markdown, main

faults.declare("t_faults_cli_alloc", {"ENOMEM", "EAGAIN"}, "allocates | a thing")
faults.declare("t_faults_cli_refs", {"speculative_refcount"}, "looks at refcounts")


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out), out.getvalue()


def test_list_glob_text() -> None:
    code, out = run("list", "t_faults_cli_*")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["t_faults_cli_alloc", "EAGAIN,", "ENOMEM", f"({__name__})"]
    assert lines[1].strip() == "allocates | a thing"
    assert lines[2].startswith("t_faults_cli_refs ")
    assert len(lines) == 4


def test_list_json() -> None:
    code, out = run("list", "t_faults_cli_r*", "--json")
    assert code == 0
    assert json.loads(out) == [{"name": "t_faults_cli_refs", "kinds": ["speculative_refcount"],
                                "module": __name__, "doc": "looks at refcounts", "reached": ""}]


def test_list_without_glob_lists_the_whole_catalog() -> None:
    code, out = run("list", "--json")
    assert code == 0
    assert [p["name"] for p in json.loads(out)] == [p.name for p in faults.catalog()]


def test_list_nothing_matches(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run("list", "t_faults_cli_allocc")
    assert (code, out) == (1, "")
    assert "did you mean 't_faults_cli_alloc'" in capsys.readouterr().err


def test_parse_prints_the_armings() -> None:
    code, out = run("parse", "a[phase=x]=2*off->1*enomem@seed=3; b=25%eagain@nth=2")
    assert code == 0
    assert out.splitlines() == [
        "1. a[phase=x]=2*off->1*ENOMEM@seed=3",
        "   point  a",
        "   when   phase='x'",
        "   chain  2x off -> 1x ENOMEM",
        "   seed   3",
        "2. b=EAGAIN@nth=2,probability=0.25",
        "   point  b",
        "   rule   kind=EAGAIN nth=2 times=1 probability=0.25",
    ]


def test_parse_json() -> None:
    code, out = run("parse", "t_faults_cli_alloc=enomem@nth=2", "--json")
    assert code == 0
    [spec] = json.loads(out)
    assert spec["canonical"] == "t_faults_cli_alloc=ENOMEM@nth=2"
    assert spec["rule"] == {"nth": 2, "times": 1, "every": None, "skip": 0, "probability": None}


def test_parse_empty() -> None:
    assert run("parse", " ; ") == (0, "(no armings)\n")


def test_parse_error_shows_the_caret(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run("parse", "a=enomem@nht=1")
    assert (code, out) == (2, "")
    err = capsys.readouterr().err.splitlines()
    assert err == ["unknown option 'nht' (did you mean 'nth'?) at character 10 (from the command line):",
                   "  a=enomem@nht=1", "           ^"]


@pytest.mark.parametrize(
    ("argv", "first_line"),
    [
        (("parse", "a=enomen"),
         "unknown fault kind 'enomen' (did you mean 'ENOMEM'?) at character 3 (from the command line):"),
        (("parse", "t_faults_cli_aloc=enomem", "--check"), "unknown fault point 't_faults_cli_aloc' "),
        (("parse", "t_faults_cli_refs=enomem", "--check"), "fault point 't_faults_cli_refs' cannot produce "),
    ],
)
def test_parse_errors_read_alike(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], first_line: str) -> None:
    # as the syntax errors: the message and its caret, no exception class name in front
    assert run(*argv) == (2, "")
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(first_line), err
    assert err[-1].strip() == "^"


def test_parse_check_finds_unknown_points(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("parse", "t_faults_cli_alloc=enomem", "--check")[0] == 0
    code, _ = run("parse", "t_faults_cli_aloc=enomem", "--check")
    assert code == 2
    assert "did you mean 't_faults_cli_alloc'" in capsys.readouterr().err
    code, _ = run("parse", "t_faults_cli_refs=enomem", "--check")
    assert code == 2
    assert "cannot produce 'ENOMEM'" in capsys.readouterr().err


def test_docs_markdown() -> None:
    points = [p for p in faults.catalog() if p.name.startswith("t_faults_cli_")]
    md = docs_markdown(points)
    assert md.startswith("# Fault points\n")
    assert "| [`t_faults_cli_alloc`](#t_faults_cli_alloc) | EAGAIN, ENOMEM | " in md
    assert "\n## `t_faults_cli_refs`\n" in md
    assert "allocates | a thing" in md  # prose section keeps the text
    code, out = run("docs")
    assert code == 0 and out.count("\n## `") == len(faults.catalog())


def test_module_entry_point() -> None:
    root = Path(faults.__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-m", "faults", "parse", "a=enomem->"],
                          capture_output=True, text=True, cwd=root, check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1] == "            ^"


def test_a_closed_pipe_ends_the_command_quietly() -> None:
    """``python -m faults list --json | head -5``: the reader goes away, no BrokenPipeError."""
    root = Path(faults.__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "faults", "list", "--json"], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command writes: its first write meets a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait() == 141
    assert err == ""

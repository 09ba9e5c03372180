"""The scripts under docs/examples run and print what the docs show (docs/model.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(script: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "docs" / "examples" / script)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_vmm_ioctl_reads_error_offset_back_from_its_ctypes_struct() -> None:
    out = run("vmm_ioctl.py")
    assert out == (
        "ioctl failed: EAGAIN, error_offset = 0x3000\n"
        "after the failure: [(0, 65536, 'shared')]\n"
        "after the retry:   [(0, 65536, 'private')]\n"
        "the guest reads:   b'DMA buffer'\n"
    )
    assert out in (ROOT / "docs" / "model.md").read_text(), "docs/model.md shows the script's output"


# --- the docs check: fenced blocks, their markers, and output compared ------------------------
from pytest_gmem.docgen import blocks  # noqa: E402  (after the script tests above)

PAGE = """# A page

<!-- check: file test_a.py -->
```python
def test_a():
    pass
```

<!-- check: run in=scratch -->
```
$ ls
test_a.py
$ printf 'one\\ntwo\\nthree\\n'
one
...
three
```

<!-- check: example -->
```
numbers that vary: 12345
```
"""


def test_blocks_reads_each_fence_with_the_marker_before_it() -> None:
    found = blocks.blocks("page.md", PAGE)
    assert [(b.line, b.lang, b.mark, b.args) for b in found] == [
        (4, "python", "file", ("test_a.py",)),
        (10, "", "run", ("in=scratch",)),
        (20, "", "example", ()),
    ]
    assert [(s.command, s.expected) for s in blocks.steps(found[1])] == [
        ("ls", ("test_a.py",)),
        ("printf 'one\\ntwo\\nthree\\n'", ("one", "...", "three")),
    ]


def test_shown_lines_must_be_printed_in_order() -> None:
    printed = "header\none\ntwo\nthree\n=== 3 passed in 0.51s ===\n"
    assert blocks.mismatch(["one", "...", "three", "=== 3 passed in 9.99s ==="], printed) is None
    assert "shown:   'tree'" in (blocks.mismatch(["one", "tree"], printed) or "")
    assert "before the line shown above it" in (blocks.mismatch(["three", "one"], printed) or "")


def test_check_page_runs_the_transcript_in_a_scratch_dir_with_the_file_blocks() -> None:
    problems, ran = blocks.check_page("page.md", PAGE, blocks.Runner())
    assert (problems, ran) == ([], 2)


def test_check_page_reports_wrong_output_and_unmarked_output_blocks() -> None:
    page = "<!-- check: run -->\n```\n$ echo actual\nexpected\n```\n\n```\nsome output\n```\n"
    problems, _ = blocks.check_page("p.md", page, blocks.Runner())
    assert len(problems) == 2
    assert problems[0].startswith("p.md:2: `echo actual` printed something else")
    assert "p.md:7: a block showing output has no check marker" in problems[1]


def test_every_output_block_of_the_docs_has_a_marker() -> None:
    unmarked = [
        b.where for page in blocks.pages() for b in blocks.blocks(page.name, page.read_text())
        if not b.mark and b.lang in blocks.OUTPUT_LANGUAGES
    ]
    assert unmarked == []


def test_every_python_block_of_the_docs_is_run() -> None:
    unrun = [
        b.where for page in blocks.pages() for b in blocks.blocks(page.name, page.read_text())
        if b.lang == "python" and b.mark not in ("file", *blocks.RUNNERS)
    ]
    assert unrun == []


# --- Python examples: run as scripts or test modules, hidden lines around them ---------------
PYTHON_PAGE = '''# Python examples

<!-- check: python
total = 40
<block>
assert total == 42, total
-->
```python
total += 2
```

<!-- check: python -->
```python
raise SystemExit("the example is wrong")
```

<!-- check: pytest
import pytest
-->
```python
@pytest.mark.parametrize("n", [1, 2])
def test_n(n):
    assert n
```

<!-- check: pytest -->
```python
def test_fails():
    assert 1 == 2
```

<!-- check: pytest outcome="1 failed" -->
```python
def test_shows_a_failure():
    assert 1 == 2
```

<!-- check: pytest -->
```python
def helper():
    pass
```

```python
print("not run")
```

<!-- check: example -->
```python
print("shown only")
```
'''


def test_python_blocks_are_run_with_their_hidden_lines_and_must_succeed() -> None:
    problems, ran = blocks.check_page("py.md", PYTHON_PAGE, blocks.Runner())
    assert ran == 6
    assert [p.split(":", 2)[1] for p in problems] == ["13", "27", "39", "44", "49"]
    failed_script, failed_test, no_test, unmarked, example = problems
    assert "the python example exited with status 1" in failed_script
    assert "| the example is wrong" in failed_script           # the script's own output
    assert "the pytest example did not pass (exit 1, '1 failed'" in failed_test
    assert "assert 1 == 2" in failed_test
    assert "did not pass (exit 5, 'no tests ran'" in no_test   # a module without a test fails
    assert "a Python example has no check marker" in unmarked
    assert "a Python example is run, not only shown" in example


def test_the_hidden_lines_of_a_marker_are_dedented_with_it() -> None:
    page = "- item\n\n    <!-- check: python\n    x = 1\n    -->\n    ```python\n    assert x == 1\n    ```\n"
    (block,) = blocks.blocks("p.md", page)
    assert (block.mark, block.hidden, block.text) == ("python", "x = 1\n", "assert x == 1")
    assert blocks.check_page("p.md", page, blocks.Runner()) == ([], 1)


def test_same_blocks_must_be_excerpts_of_the_file_in_order() -> None:
    source = "examples/test_schedules.py"
    lines = [line for line in (ROOT / source).read_text().splitlines() if line.strip()]
    good = f"<!-- check: same {source} -->\n```python\n{lines[0]}\n...\n{lines[5]}\n```\n"
    swapped = f"<!-- check: same {source} -->\n```python\n{lines[5]}\n{lines[0]}\n```\n"
    missing = "<!-- check: same examples/no_such_file.py -->\n```python\npass\n```\n"
    assert blocks.check_page("p.md", good, blocks.Runner()) == ([], 1)
    (wrong,), _ = blocks.check_page("p.md", swapped, blocks.Runner())
    assert "is not an excerpt of examples/test_schedules.py" in wrong and "before the line shown" in wrong
    (absent,), _ = blocks.check_page("p.md", missing, blocks.Runner())
    assert "'examples/no_such_file.py', which does not exist" in absent

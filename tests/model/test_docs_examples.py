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

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

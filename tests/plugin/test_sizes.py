"""One size grammar (pytest_gmem.sizes) for the gmem marker, the Faker provider and the model."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest
from faker import Faker

from pytest_gmem import Host
from pytest_gmem.providers import GmemProvider
from pytest_gmem.sizes import parse_size

M = 1 << 20

VALID = [
    (4096, 4096),
    ("4096", 4096),
    ("0x1000", 4096),
    ("0X1000", 4096),
    ("0100", 100),  # decimal, leading zeros and all (int("0100", 0) would refuse it)
    ("4K", 4096),
    ("3K", 3072),
    ("1K", 1024),
    ("4k", 4096),
    ("4KB", 4096),
    ("2M", 2 * M),
    ("2MB", 2 * M),
    ("2MiB", 2 * M),
    ("2mib", 2 * M),
    (" 2M ", 2 * M),
    ("1.5M", 1536 << 10),
    ("0.5G", 512 * M),
    ("1T", 1 << 40),
]
INVALID = ["2 M", "1.1M", "0.5K", "-4K", "1e3", "2MBB", "2Mi", "0x10K", "", "M"]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_the_grammar_reads(text: int | str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", INVALID)
def test_the_grammar_refuses_naming_the_value(text: str) -> None:
    with pytest.raises(ValueError, match=f"invalid length {text!r}"):
        parse_size(text, "length")


@pytest.mark.parametrize("value", [True, None, 2.0])
def test_not_a_size_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match=f"align must be bytes .*got {value!r}"):
        parse_size(value, "align")


@pytest.mark.parametrize(("text", "expected"), [v for v in VALID if v[1] <= 2 * M and v[1] % 4096 == 0])
def test_model_and_marker_agree(pytester: pytest.Pytester, text: str, expected: int) -> None:
    """What the model takes for a size, the gmem marker takes too, with the same meaning."""
    vm = Host().create_vm()
    assert vm.create_guest_memfd(text, page_size="4K").size == expected
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.gmem(size={text!r}, page_size="4K")
        def test_x(gmem):
            assert gmem.size == {expected}
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


@pytest.mark.parametrize("text", ["2 M", "1.1M"])
def test_model_and_marker_refuse_alike(pytester: pytest.Pytester, text: str) -> None:
    vm = Host().create_vm()
    with pytest.raises(ValueError, match=f"invalid size {text!r}"):
        vm.create_guest_memfd(text, page_size="4K")
    pytester.makepyfile(f"import pytest\n\n@pytest.mark.gmem(size={text!r})\ndef test_x(gmem):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"gmem: marker gmem on test_x: invalid size {text!r}: *"])
    assert "Traceback" not in result.stdout.str()


def test_alignment_is_the_callers_check() -> None:
    """'3K' is a size; that a file or a conversion needs whole 4K pages is the kernel's EINVAL."""
    vm = Host().create_vm()
    with pytest.raises(OSError, match="size 3072 is not a positive multiple of 4K") as e:
        vm.create_guest_memfd("3K", page_size="4K")
    assert e.value.errno == errno.EINVAL


def test_provider_reads_the_same_grammar() -> None:
    fake = Faker()
    fake.seed_instance(1)
    fake.add_provider(GmemProvider)
    offset, length = fake.gmem_huge_range("8MiB", page_size="2MB")
    assert offset % (2 * M) == 0 and length % (2 * M) == 0 and offset + length <= 8 * M
    with pytest.raises(ValueError, match="invalid align '2 M'"):
        fake.gmem_offset("8M", align="2 M")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: f.gmem_range("8M", align=0), "align must be a positive size.*got 0"),
        (lambda f: f.gmem_offset("8M", align=-4096), "align must be a positive size.*got -4096"),
        (lambda f: f.gmem_workload("8M", huge=0), "huge must be a positive size.*got 0"),
        (lambda f: f.gmem_range("8M", max_length="0K"), "max_length must be a positive size.*got '0K'"),
    ],
)
def test_provider_refuses_a_zero_alignment(call: object, message: str) -> None:
    fake = Faker()
    fake.add_provider(GmemProvider)
    with pytest.raises(ValueError, match=message):
        call(fake)  # type: ignore[operator]


def test_provider_workload_huge_false_means_no_huge_ranges() -> None:
    """docs/fixtures.md: huge=None (or False) gives 4K-aligned ranges only."""
    fake = Faker()
    fake.seed_instance(3)
    fake.add_provider(GmemProvider)
    ops = fake.gmem_workload("8M", steps=40, huge=False)
    assert len(ops) == 40 and all(op.length <= 2 * M for op in ops)


def test_loading_the_plugin_does_not_import_the_model() -> None:
    code = (
        "import sys, pytest_gmem.plugin, pytest_gmem.sizes, pytest_gmem.config as c\n"
        "c.gmem_params([((), {'size': '2MiB'})], 'marker gmem on test_x', lambda: ())\n"
        "assert not [m for m in sys.modules if m.startswith('pytest_gmem.model')], sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

"""Seeds: per test from the session seed and node id; Faker seeded; the provider."""

from __future__ import annotations

import random
import re

import pytest
from faker import Faker

from pytest_gmem.config import seed_for
from pytest_gmem.providers import GmemProvider, Op

SUITE = """
import faults as engine

def test_a(faker):
    print("VALUE a", faker.pyint(), engine.current().seed)

def test_b(faker):
    print("VALUE b", faker.pyint(), engine.current().seed)
"""


def _values(result: pytest.RunResult) -> dict[str, str]:
    return dict(re.findall(r"VALUE (\w) (.*)", result.stdout.str()))


def test_per_test_seed_and_faker_follow_gmem_seed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    one = _values(pytester.runpytest("-s", "--gmem-seed=11"))
    again = _values(pytester.runpytest("-s", "--gmem-seed=11", "-k", "test_b"))
    other = _values(pytester.runpytest("-s", "--gmem-seed=12"))
    assert one["b"] == again["b"]  # stable whatever else is selected
    assert one["a"] != one["b"]
    assert one != other
    assert one["a"].split()[1] == str(seed_for(11, "test_suite.py::test_a"))


def test_provider_ranges_are_valid() -> None:
    fake = Faker()
    fake.add_provider(GmemProvider)
    fake.seed_instance(3)
    size = 8 << 20
    for _ in range(200):
        off = fake.gmem_offset(size)
        assert off % 4096 == 0 and 0 <= off < size
        start, length = fake.gmem_range(size)
        assert start % 4096 == 0 and length % 4096 == 0 and length > 0 and start + length <= size
        start, length = fake.gmem_huge_range(size, "2M")
        assert start % (2 << 20) == 0 and length % (2 << 20) == 0 and start + length <= size
    work = fake.gmem_workload("8M", steps=50)
    assert len(work) == 50 and all(isinstance(op, Op) for op in work)
    assert {op.name for op in work} <= {"convert_shared", "convert_private"}
    assert any(op.length % (2 << 20) == 0 for op in work)
    first, second = Faker(), Faker()
    for f in (first, second):
        f.add_provider(GmemProvider)
        f.seed_instance(3)
    assert first.gmem_workload("8M", steps=5) == second.gmem_workload("8M", steps=5)


def test_provider_workload_runs_on_the_model(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        from pytest_gmem.providers import GmemProvider

        @pytest.mark.gmem(size="8M", page_size="2M")
        def test_workload(gmem, faker):
            faker.add_provider(GmemProvider)
            for op in faker.gmem_workload(gmem.size if hasattr(gmem, "size") else "8M", steps=30):
                op.apply(gmem)
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_seed_for_is_stable() -> None:
    assert seed_for(1, "a::b") == seed_for(1, "a::b")
    assert seed_for(1, "a::b") != seed_for(2, "a::b")
    assert 0 <= seed_for(random.randrange(1 << 32), "x") < 1 << 32

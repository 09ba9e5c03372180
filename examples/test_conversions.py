"""A downstream suite, written the way a user of pytest-gmem writes one.

The fixtures build a host, a VM and a guest_memfd file from the ``gmem`` marker; after each
test the plugin checks the model's invariants and its WARN log.
"""

import errno
import itertools

import pytest

from pytest_gmem import ConversionError, SigBus
from pytest_gmem.providers import GmemProvider


@pytest.mark.gmem(size="4M", page_size="2M")
def test_round_trip_keeps_contents(gmem):
    gmem.guest_write(0, b"hello")
    gmem.convert_private(0, "2M")
    assert gmem.shareability(0) == "private"
    gmem.convert_shared(0, "2M")
    assert gmem.guest_read(0, 5) == b"hello"


@pytest.mark.gmem(size="2M", page_size="2M", init_private=True)
def test_host_cannot_touch_private_memory(gmem):
    with gmem.mmap() as m:
        with pytest.raises(SigBus):
            m.read(0, 8)
        gmem.convert_shared(0, "4K")
        assert m.read(0, 8) == bytes(8)


@pytest.mark.gmem(size="2M", page_size="2M")
def test_pinned_page_blocks_conversion_to_private(gmem):
    with gmem.mmap() as m, m.pin(0, 4096):
        with pytest.raises(ConversionError) as info:
            gmem.convert_private(0, "2M")
    assert info.value.errno == errno.EAGAIN
    gmem.convert_private(0, "2M")  # unpinned: the retry succeeds


@pytest.mark.gmem(size="8M", page_size="2M")
def test_random_conversions_keep_invariants(gmem, faker):
    # faker is seeded from --gmem-seed and the test id: a failure comes back with the same seed
    faker.add_provider(GmemProvider)
    for op in faker.gmem_workload("8M", steps=25):
        op.apply(gmem)
    gmem.vm.host.check()  # the plugin checks again after the test; this names the step
    ranges = gmem.ranges()
    assert all(a[2] != b[2] and a[1] == b[0] for a, b in itertools.pairwise(ranges))  # coalesced, total


@pytest.mark.parametrize("page_size", ["4K", "2M", "1G"])
def test_every_page_size(gmem_factory, page_size):
    gmem = gmem_factory(size="1G" if page_size == "1G" else "4M", page_size=page_size)
    gmem.convert_private(0, "4K")
    assert gmem.ranges()[0] == (0, 4096, "private")

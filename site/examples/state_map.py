"""The state map a failure report shows (``host.state_map()``), for one small scenario.

A 4M file of 2M HugeTLB pages, private, with one 4K page converted to shared: the first huge
page is split around it, a host mapping and a pin hold the shared page.

Run: python docs/examples/state_map.py   (CI runs it and compares: docs/model.md)
"""

from __future__ import annotations

from pytest_gmem import Host

host = Host(hugetlb={"2M": 8})
vm = host.create_vm(vm_type="sw_protected")
gmem = vm.create_guest_memfd(size="4M", page_size="2M", mmap=True, init_private=True)
gmem.guest_write(0, b"private data")
gmem.convert_shared(0x1000, "4K")
mapping = gmem.mmap()
mapping.write(0x1000, b"shared page")
pin = mapping.pin(0x1000, "4K")
print(host.state_map())

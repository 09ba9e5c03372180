"""The documentation's generated pages and its checked examples (``python -m pytest_gmem.docgen``).

Reference pages are built from the code's own registries, never written by hand:

* ``docs/reference/markers.md`` from :data:`pytest_gmem.config.MARKERS`;
* ``docs/reference/options.md`` from what ``plugin.pytest_addoption`` registers, with the
  environment variables of :mod:`pytest_gmem.config`;
* ``docs/fault-points.md`` from ``faults.catalog()`` (``python -m faults docs``);
* ``docs/reference/kernel.md`` from the model modules' and functions' docstrings (what each
  mirrors) and the revision flags each function reads;
* ``docs/img/comparison.svg`` and ``docs/comparison/gmem-report.html`` from a fixed-seed run
  of the example suite's design comparison.

:mod:`.blocks` runs the commands the Markdown pages show and compares their output.
"""

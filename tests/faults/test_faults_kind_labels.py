"""Each kind's compact id label, its rebuild arguments and the one-kind parser (what fault
sweeps name their items with and re-arm from), one record per kind in faults/kinds.py."""

from __future__ import annotations

import pytest

import faults


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("ENOMEM", "ENOMEM"),
        ("enomem", "ENOMEM"),
        ("EWOULDBLOCK", "EAGAIN"),
        ("speculative_refcount(hold=3)", "specref.hold3"),
        ("speculative_refcount(hold=none)", "specref.forever"),
        ("speculative_refcount(refs=2,hold=3)", "specref.x2.hold3"),
        ("extra_refcount", "extraref"),
        ("extra_refcount(refs=3)", "extraref.x3"),
        ("tdx_error", "tdx.busy"),
        ("tdx_error(fatal)", "tdx.sw_error"),
    ],
)
def test_a_kind_parses_labels_and_rebuilds_itself(text: str, label: str) -> None:
    kind = faults.parse_kind(text)
    assert kind.id_label() == label
    assert not set("-[ ") & set(label)
    name, args = faults.kind_arguments(kind)
    assert faults.make_kind(name, **dict(args)) == kind


@pytest.mark.parametrize("text", ["2*enomem", "off", "enomem->off", "25%enomem", "nosuch"])
def test_parse_kind_takes_exactly_one_kind(text: str) -> None:
    with pytest.raises(faults.FaultError):
        faults.parse_kind(text, source="marker fault_sweep on test_x")


def test_a_callback_has_no_arguments_to_rebuild_it() -> None:
    with pytest.raises(faults.UnknownKind, match="cannot be rebuilt by name"):
        faults.kind_arguments(faults.callback(lambda ctx: None))
    assert faults.callback(lambda ctx: None).id_label() == "callback.<lambda>"

"""Strict names: unknown points, unknown kinds and kinds a point cannot produce are errors
with a close-match suggestion; the catalog lists what was declared."""

from __future__ import annotations

import pytest

import faults

ALLOC = faults.declare("t_faults_names_alloc_buffer", {"ENOMEM"}, "allocates   the\n buffer")
REFS = faults.declare("t_faults_names_refcount", {"speculative_refcount", "extra_refcount"},
                      "checks the folio refcount")
TDX = faults.declare("t_faults_names_seamcall", {"tdx_error"}, "a SEAMCALL")


def test_unknown_point_suggests_the_close_name() -> None:
    with pytest.raises(faults.UnknownPoint) as e:
        faults.inject("t_faults_names_alloc_bufer", "ENOMEM", source="marker on test_x")
    msg = str(e.value)
    assert "'t_faults_names_alloc_bufer'" in msg
    assert "(from marker on test_x)" in msg
    assert "did you mean 't_faults_names_alloc_buffer'" in msg


def test_glob_matching_nothing_is_an_error() -> None:
    with pytest.raises(faults.UnknownPoint, match="matches no fault point"):
        faults.inject("t_faults_names_nothing_*", "ENOMEM")


def test_unknown_kind_suggests_the_close_name() -> None:
    with pytest.raises(faults.UnknownKind, match="did you mean 'ENOMEM'"):
        faults.inject("t_faults_names_alloc_buffer", "ENOMEN")
    with pytest.raises(faults.UnknownKind, match="did you mean 'speculative_refcount'"):
        faults.make_kind("speculative_refcont")


def test_kind_outside_the_allow_list_is_refused() -> None:
    with pytest.raises(faults.KindNotAllowed) as e:
        faults.inject("t_faults_names_alloc_buffer", faults.speculative_refcount(), source="GMEM_FAULTS")
    msg = str(e.value)
    assert "cannot produce 'speculative_refcount'" in msg and "(from GMEM_FAULTS)" in msg
    assert "it can produce ENOMEM" in msg


def test_errno_kinds_are_checked_by_name() -> None:
    with pytest.raises(faults.KindNotAllowed, match="cannot produce 'EIO'"):
        faults.inject("t_faults_names_alloc_buffer", faults.errno_kind("eio"))


def test_glob_where_no_point_allows_the_kind() -> None:
    with pytest.raises(faults.KindNotAllowed, match="no fault point matching 't_faults_names_\\*'"):
        faults.inject("t_faults_names_*", "EIO")


def test_universal_kinds_are_allowed_everywhere(sc: faults.Scope) -> None:
    seen: list[int] = []
    with faults.inject("t_faults_names_seamcall", faults.callback(lambda ctx: seen.append(1))):
        f = TDX.hit()
    # a callback that returns None has had its effect: the caller sees no fault to apply
    assert f is None and seen == [1] and sc.fired[-1].kind.name == "callback"
    with faults.inject_chain("t_faults_names_seamcall", [faults.Term(faults.Off())]):
        assert TDX.hit() is None


def test_callback_may_return_the_kind_to_apply(sc: faults.Scope) -> None:
    with faults.inject("t_faults_names_seamcall", faults.callback(lambda ctx: faults.tdx_error("fatal"))):
        f = TDX.hit()
    assert f is not None and isinstance(f.kind, faults.TdxError)
    assert f.kind.code == "TDX_SW_ERROR" and not f.kind.retryable


def test_parameterised_kinds_validate_their_arguments() -> None:
    with pytest.raises(ValueError, match="refs must be >= 1"):
        faults.speculative_refcount(refs=0)
    with pytest.raises(faults.UnknownKind, match="did you mean 'TDX_OPERAND_BUSY'"):
        faults.tdx_error("TDX_OPERAND_BUS")
    assert faults.tdx_error().retryable


def test_declare_rejects_bad_names_and_conflicting_redeclaration() -> None:
    for bad in ("t faults names bad", "café", "..", "9x", "a..b", "a.", ".a", "a-b", ""):
        with pytest.raises(faults.FaultError, match="must be ASCII letters"):
            faults.declare(bad, {"ENOMEM"}, "")
    assert faults.declare("t_faults_names_alloc_buffer", {"ENOMEM"}, "again") is ALLOC
    with pytest.raises(faults.FaultError, match="declared twice"):
        faults.declare("t_faults_names_alloc_buffer", {"EIO"}, "")


def test_catalog_lists_declared_points_in_name_order() -> None:
    mine = [p for p in faults.catalog() if p.name.startswith("t_faults_names_")]
    assert [p.name for p in mine] == ["t_faults_names_alloc_buffer", "t_faults_names_refcount",
                                      "t_faults_names_seamcall"]
    assert mine[0].kinds == {"ENOMEM"}
    assert mine[0].doc == "allocates the buffer"  # whitespace normalised
    assert mine[0].module == __name__
    names = [p.name for p in faults.catalog()]
    assert names == sorted(names)


def test_declare_normalises_and_checks_the_allow_list() -> None:
    single = faults.declare("t_faults_names_single", "ENOMEM", "a single kind as a string")
    assert single.kinds == {"ENOMEM"}
    lower = faults.declare("t_faults_names.lower", {"enomem", "Extra_Refcount", "EWOULDBLOCK"}, "any case")
    assert lower.kinds == {"ENOMEM", "extra_refcount", "EAGAIN"}
    with faults.scope():
        faults.inject("t_faults_names.lower", "ENOMEM")
        faults.arm("t_faults_names.lower=enomem; t_faults_names.lower=ewouldblock")
    with pytest.raises(faults.UnknownKind, match=r"declares unknown kind 'ENOMEN' \(did you mean 'ENOMEM'\?\)"):
        faults.declare("t_faults_names_typo", {"ENOMEN"}, "")
    with pytest.raises(faults.UnknownKind, match="declares unknown kind 'bogus_kind'"):
        faults.declare("t_faults_names_typo", ("ENOMEM", "bogus_kind"), "")
    assert "t_faults_names_typo" not in {p.name for p in faults.catalog()}


def test_unknown_kind_names_say_where_they_came_from() -> None:
    with pytest.raises(faults.UnknownKind,
                       match=r"unknown fault kind 'ENOMEN' \(from marker on test_x\) \(did you mean 'ENOMEM'\?\)"):
        faults.inject("t_faults_names_alloc_buffer", "ENOMEN", source="marker on test_x")


def test_ewouldblock_is_eagain() -> None:
    assert faults.make_kind("EWOULDBLOCK") == faults.Errno("EAGAIN") == faults.Errno("EWOULDBLOCK")
    assert faults.errno_kind("ewouldblock").name == "EAGAIN"

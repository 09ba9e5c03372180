"""faults: a pytest-free engine of named fault points, arming rules, a text grammar, traces.

    import faults
    P = faults.declare("my_alloc", kinds={"ENOMEM"}, doc="allocation of the widget")
    ...
    if (f := P.hit(index=i)) is not None:   # at the failure site
        raise MemoryError
    ...
    with faults.inject("my_alloc", faults.enomem(), nth=2):
        run()
    with faults.scope():
        faults.arm("my_alloc=2*off->1*enomem")    # the text grammar (faults.grammar)
        run()
"""

from .arming import Arming, ChainPolicy, RulePolicy, Term
from .diagnose import why_unfired
from .errors import FaultError, KindNotAllowed, SpecSyntaxError, UnknownKind, UnknownPoint
from .grammar import arm, parse, parse_kind
from .kinds import (
    Callback,
    Errno,
    ExtraRefcount,
    Kind,
    Off,
    SpeculativeRefcount,
    TdxError,
    as_kind,
    callback,
    enomem,
    errno_kind,
    extra_refcount,
    kind_arguments,
    make_kind,
    speculative_refcount,
    tdx_error,
)
from .points import FaultPoint, PointInfo, active, catalog, declare, get_point, match_points
from .schedule import Schedule
from .scope import (
    Fired,
    Scope,
    TraceEvent,
    activate,
    armed,
    current,
    deactivate,
    inject,
    inject_chain,
    open_scope,
    scope,
)
from .spec import ArmingSpec, RuleSpec, TermSpec, format_spec

__all__ = [
    "Arming", "ArmingSpec", "Callback", "ChainPolicy", "Errno", "ExtraRefcount", "FaultError",
    "FaultPoint", "Fired", "Kind", "KindNotAllowed", "Off", "PointInfo", "RulePolicy", "RuleSpec",
    "Schedule", "Scope", "SpecSyntaxError", "SpeculativeRefcount", "TdxError", "Term", "TermSpec", "TraceEvent",
    "UnknownKind", "UnknownPoint", "activate", "active", "arm", "armed", "as_kind", "callback", "catalog",
    "current", "deactivate", "declare", "enomem", "errno_kind", "extra_refcount", "format_spec",
    "get_point", "inject", "inject_chain", "kind_arguments", "make_kind", "match_points", "open_scope",
    "parse", "parse_kind", "scope", "speculative_refcount", "tdx_error", "why_unfired",
]

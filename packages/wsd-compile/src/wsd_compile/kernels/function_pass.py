"""One module pass from a choice and a rewrite, shared by wsd's Relax rewrites."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from typing import Any

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator


def function_pass(
    name: str,
    make: Callable[[tvm.IRModule, Any], PyExprMutator],
    choose: Callable[[relax.Function], Collection[Any]],
    functions: Iterable[str] | None = None,
) -> tvm.transform.Pass:
    """A module pass named ``name``: each Relax function of the module (only
    those named ``functions``, if given) where ``choose(function)`` finds
    something is rewritten by ``make(mod, found)``."""
    names = None if functions is None else frozenset(functions)

    @tvm.transform.module_pass(opt_level=0, name=name)  # type: ignore[untyped-decorator]
    def rewrite(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        for gvar, func in list(mod.functions_items()):
            if not isinstance(func, relax.Function):
                continue
            if names is not None and gvar.name_hint not in names:
                continue
            found = choose(func)
            if not found:
                continue
            rewriter = make(mod, found)
            rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
            mod = rewriter.builder_.get()
        return mod

    pass_: tvm.transform.Pass = rewrite
    return pass_

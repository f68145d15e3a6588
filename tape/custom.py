"""Custom primitives: a user's op, declared from its forward on raw arrays plus its rules.

It becomes a row of the op table like any built-in: recorded as one entry, differentiated by
the same sweep, printed under its own name in the trace.
"""

from __future__ import annotations

from .ops.registry import apply, defop, new_opcode


class Primitive:
    """A new op. Decorate the forward (raw arrays in, raw array out), then give its rules.

    >>> import numpy as np, tape as tp
    >>> @tp.primitive
    ... def cube(x):
    ...     return x ** 3
    >>> cube.defvjp(lambda g, out, x: (3 * x**2 * g,))
    >>> x = tp.tensor(2.0, requires_grad=True)
    >>> with tp.record():
    ...     y = cube(x)
    >>> y.backward(); x.grad
    tensor(12.)
    """

    def __init__(self, forward):
        self.forward = forward
        self.__name__ = getattr(forward, "__name__", "primitive")
        self.__doc__ = getattr(forward, "__doc__", None)
        # Saves every input and the output: a user's rule may read any of them.
        self.op = defop(new_opcode(), self.__name__, forward, save="o*")

    def defvjp(self, rule) -> None:
        """`rule(g, out, *inputs)` -> a tuple with one cotangent per input (None: no gradient)."""

        def vjp_all(g, out, *inputs):
            cts = rule(g, out, *inputs)
            return cts if isinstance(cts, (tuple, list)) else (cts,)

        self.op.vjp_all = vjp_all

    def defjvp(self, rule) -> None:
        """`rule(tangents, out, *inputs)` -> the output tangent (tangents: one per input)."""
        self.op.jvp = rule

    def __call__(self, *args):
        if self.op.vjp_all is None:
            raise NotImplementedError(f"{self.__name__}: no vjp rule yet; call {self.__name__}.defvjp(rule) first")
        return apply(self.op, args)

    def __repr__(self):
        return f"<tp.primitive {self.__name__}>"


def primitive(forward) -> Primitive:
    """Declare a custom primitive (see `Primitive`)."""
    return Primitive(forward)

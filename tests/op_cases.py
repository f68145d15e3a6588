"""Test cases generated from the op table: every row's samples (or its family's default), plus the
composites, which have no rows and list their inputs here.

A case is (id, opcode or None for a composite, function on Tensors, NumPy reference, inputs,
dtypes). `test_every_op_is_covered` keeps this honest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

import tape as tp
import tape.scipy  # noqa: F401  (the scipy.special rows join the op table when tape.scipy is imported)
from tape.ops import OPS
from tape.ops.registry import FIRST_CUSTOM, FLOATS, Op, samples_of


class Case(NamedTuple):
    id: str
    code: int | None
    fn: Callable
    ref: Callable
    args: list
    dtypes: tuple = FLOATS


def _plain_call(f, *xs):
    return f(*xs)


def row_cases():
    for code, op in sorted(OPS.items()):
        if code == Op.LEAF or code >= FIRST_CUSTOM:
            continue
        for s in samples_of(op, np.random.default_rng(1234 + code)):
            call = s.call or _plain_call
            ref = s.ref or (lambda *xs, call=call, f=op.numpy: call(f, *xs))
            if s.ref is None and op.numpy is None:
                raise AssertionError(f"{op.name}: a sample needs ref= where the row stands for no NumPy function")
            fn = lambda *xs, call=call, f=op.function: call(f, *xs)  # noqa: E731
            yield Case(f"{op.name}-{s.id}".rstrip("-"), code, fn, ref, list(s.arrays), op.dtypes)


def composite_cases():
    rng = np.random.default_rng(1234)
    u = lambda *s: rng.uniform(-1, 1, size=s)  # noqa: E731
    pos = lambda *s: rng.uniform(0.5, 2, size=s)  # noqa: E731

    def sig(x):
        return 1 / (1 + np.exp(-x))

    def lse(x, axis=None, keepdims=False):
        m = np.max(x, axis=axis, keepdims=True)
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
        return out if keepdims else np.squeeze(out, axis=axis)

    def softmax(x, axis=-1):
        e = np.exp(x - np.max(x, axis=axis, keepdims=True))
        return e / e.sum(axis=axis, keepdims=True)

    c = pos(3)
    items = [
        ("square", tp.square, np.square, [u(3)]),
        ("sigmoid", tp.sigmoid, sig, [u(2, 3) * 4]),
        ("relu", tp.relu, lambda x: np.maximum(x, 0), [u(2, 3)]),
        ("softplus", tp.softplus, lambda x: np.log1p(np.exp(x)), [u(2, 3) * 3]),
        ("clip", lambda x: tp.clip(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5), [u(4, 3)]),
        ("mean", lambda x: tp.mean(x, axis=1), lambda x: np.mean(x, axis=1), [u(2, 3)]),
        ("mean-all", tp.mean, np.mean, [u(2, 3)]),
        ("var", lambda x: tp.var(x, axis=0, ddof=1), lambda x: np.var(x, axis=0, ddof=1), [u(4, 3)]),
        (
            "std",
            lambda x: tp.std(x, axis=(0, 1), keepdims=True),
            lambda x: np.std(x, axis=(0, 1), keepdims=True),
            [u(4, 3)],
        ),
        ("logsumexp", tp.logsumexp, lse, [u(2, 3)]),
        ("logsumexp-axis", lambda x: tp.logsumexp(x, axis=1), lambda x: lse(x, axis=1), [u(2, 3)]),
        ("softmax", tp.softmax, softmax, [u(2, 3)]),
        ("log_softmax", lambda x: tp.log_softmax(x, axis=0), lambda x: np.log(softmax(x, axis=0)), [u(2, 3)]),
        ("norm", tp.norm, np.linalg.norm, [u(2, 3)]),
        ("norm-ord1-axis", lambda x: tp.norm(x, ord=1, axis=1), lambda x: np.linalg.norm(x, ord=1, axis=1), [u(2, 3)]),
        ("norm-ord3", lambda x: tp.norm(x, ord=3), lambda x: np.linalg.norm(x, ord=3), [u(4)]),
        ("norm-inf", lambda x: tp.norm(x, ord=np.inf), lambda x: np.linalg.norm(x, ord=np.inf), [u(4)]),
        ("norm-mat1", lambda x: tp.norm(x, ord=1), lambda x: np.linalg.norm(x, ord=1), [u(3, 3)]),
        ("norm-matinf", lambda x: tp.norm(x, ord=np.inf), lambda x: np.linalg.norm(x, ord=np.inf), [u(3, 3)]),
        ("norm-fro", lambda x: tp.norm(x, ord="fro"), lambda x: np.linalg.norm(x, ord="fro"), [u(3, 2)]),
        ("inner", tp.inner, np.inner, [u(2, 3), u(4, 3)]),
        ("outer", tp.outer, np.outer, [u(3), u(2)]),
        ("trace", tp.trace, np.trace, [u(3, 3)]),
        ("trace-offset", lambda x: tp.trace(x, offset=1), lambda x: np.trace(x, offset=1), [u(3, 4)]),
        ("swapaxes", lambda x: tp.swapaxes(x, 0, 2), lambda x: np.swapaxes(x, 0, 2), [u(2, 3, 4)]),
        ("moveaxis", lambda x: tp.moveaxis(x, 0, -1), lambda x: np.moveaxis(x, 0, -1), [u(2, 3, 4)]),
        ("expand_dims", lambda x: tp.expand_dims(x, 1), lambda x: np.expand_dims(x, 1), [u(2, 3)]),
        ("squeeze", tp.squeeze, np.squeeze, [u(2, 1, 3)]),
        ("stack", lambda a, b: tp.stack([a, b], axis=1), lambda a, b: np.stack([a, b], axis=1), [u(2, 3), u(2, 3)]),
        ("split", lambda x: tp.split(x, [1, 3], axis=1)[1], lambda x: np.split(x, [1, 3], axis=1)[1], [u(2, 4)]),
        ("flip", lambda x: tp.flip(x, 0), lambda x: np.flip(x, 0), [u(3, 2)]),
        ("pow-scalar-exponent", lambda x: x**3, lambda x: x**3, [u(3)]),
        ("rpow", lambda x: 2.0**x, lambda x: 2.0**x, [u(3)]),
        (
            "rsub-rdiv",
            lambda x: (1.0 - x) / (2.0 + x) + c / (x + 2),
            lambda x: (1.0 - x) / (2.0 + x) + c / (x + 2),
            [u(3)],
        ),
    ]
    for id, fn, ref, args in items:
        yield Case(id, None, fn, ref, args)


def all_cases():
    return [*row_cases(), *composite_cases()]

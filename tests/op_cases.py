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


_IDX = np.array([[2, 0, 0], [1, 2, 0]])


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
        # issue 12: NumPy's functions that are compositions of the primitives (tape/numpy_extra.py)
        ("fabs", tp.fabs, np.fabs, [u(2, 3)]),
        ("degrees", tp.degrees, np.degrees, [u(3)]),
        ("rad2deg", tp.rad2deg, np.rad2deg, [u(3)]),
        ("radians", tp.radians, np.radians, [u(3)]),
        ("deg2rad", tp.deg2rad, np.deg2rad, [u(3)]),
        ("sinc", tp.sinc, np.sinc, [u(2, 3) * 2]),
        ("fmax", tp.fmax, np.fmax, [u(2, 3), u(3)]),
        ("fmin", tp.fmin, np.fmin, [u(2, 1), u(3)]),
        ("nan_to_num", tp.nan_to_num, np.nan_to_num, [u(3)]),
        ("real", tp.real, np.real, [u(3)]),
        ("conj", tp.conj, np.conj, [u(3)]),
        ("imag-plus", lambda x: tp.imag(x) + x, lambda x: np.imag(x) + x, [u(3)]),
        ("angle-plus", lambda x: tp.angle(x) + x, lambda x: np.angle(x) + x, [u(4)]),
        ("atleast_1d", tp.atleast_1d, np.atleast_1d, [u()]),
        ("atleast_2d", tp.atleast_2d, np.atleast_2d, [u(3)]),
        ("atleast_3d", lambda a, b: tp.atleast_3d(a, b)[1], lambda a, b: np.atleast_3d(a, b)[1], [u(3), u(2, 3)]),
        ("vstack", lambda a, b: tp.vstack([a, b]), lambda a, b: np.vstack([a, b]), [u(3), u(2, 3)]),
        ("hstack-1d", lambda a, b: tp.hstack((a, b)), lambda a, b: np.hstack((a, b)), [u(3), u(2)]),
        ("hstack-2d", lambda a, b: tp.hstack([a, b]), lambda a, b: np.hstack([a, b]), [u(2, 3), u(2, 1)]),
        ("dstack", lambda a, b: tp.dstack([a, b]), lambda a, b: np.dstack([a, b]), [u(2, 3), u(2, 3)]),
        ("column_stack", lambda a, b: tp.column_stack([a, b]), lambda a, b: np.column_stack([a, b]), [u(3), u(3, 2)]),
        ("repeat", lambda x: tp.repeat(x, 2), lambda x: np.repeat(x, 2), [u(2, 3)]),
        (
            "repeat-axis",
            lambda x: tp.repeat(x, [1, 0, 3], axis=1),
            lambda x: np.repeat(x, [1, 0, 3], axis=1),
            [u(2, 3)],
        ),
        ("tile", lambda x: tp.tile(x, (2, 1, 3)), lambda x: np.tile(x, (2, 1, 3)), [u(2, 3)]),
        ("tile-int", lambda x: tp.tile(x, 2), lambda x: np.tile(x, 2), [u(2, 3)]),
        ("roll", lambda x: tp.roll(x, 2), lambda x: np.roll(x, 2), [u(2, 3)]),
        ("roll-axes", lambda x: tp.roll(x, (1, -1), (0, 1)), lambda x: np.roll(x, (1, -1), (0, 1)), [u(2, 3)]),
        ("rot90", tp.rot90, np.rot90, [u(2, 3)]),
        ("rot90-k3", lambda x: tp.rot90(x, 3, (2, 0)), lambda x: np.rot90(x, 3, (2, 0)), [u(2, 3, 4)]),
        ("rot90-k2", lambda x: tp.rot90(x, -2), lambda x: np.rot90(x, -2), [u(2, 3)]),
        ("rollaxis", lambda x: tp.rollaxis(x, 2), lambda x: np.rollaxis(x, 2), [u(2, 3, 4)]),
        ("rollaxis-start", lambda x: tp.rollaxis(x, 0, 2), lambda x: np.rollaxis(x, 0, 2), [u(2, 3, 4)]),
        ("fliplr", tp.fliplr, np.fliplr, [u(2, 3)]),
        ("flipud", tp.flipud, np.flipud, [u(2, 3)]),
        ("array_split", lambda x: tp.array_split(x, 3)[0], lambda x: np.array_split(x, 3)[0], [u(5, 2)]),
        (
            "array_split-idx",
            lambda x: tp.array_split(x, [1, 2], 1)[2],
            lambda x: np.array_split(x, [1, 2], 1)[2],
            [u(2, 4)],
        ),
        ("hsplit", lambda x: tp.hsplit(x, 2)[1], lambda x: np.hsplit(x, 2)[1], [u(3, 4)]),
        ("vsplit", lambda x: tp.vsplit(x, [1])[1], lambda x: np.vsplit(x, [1])[1], [u(3, 4)]),
        ("dsplit", lambda x: tp.dsplit(x, 2)[0], lambda x: np.dsplit(x, 2)[0], [u(2, 3, 4)]),
        ("diag-1d", lambda x: tp.diag(x, -1), lambda x: np.diag(x, -1), [u(3)]),
        ("diag-2d", lambda x: tp.diag(x, 1), lambda x: np.diag(x, 1), [u(3, 4)]),
        ("diagonal", lambda x: tp.diagonal(x, -1, 2, 0), lambda x: np.diagonal(x, -1, 2, 0), [u(3, 2, 4)]),
        ("tril", tp.tril, np.tril, [u(3, 4)]),
        ("triu-batch", lambda x: tp.triu(x, -1), lambda x: np.triu(x, -1), [u(2, 4, 3)]),
        ("tril-1d", lambda x: tp.tril(x, 1), lambda x: np.tril(x, 1), [u(3)]),
        ("take", lambda x: tp.take(x, [4, 0, 4, -1]), lambda x: np.take(x, [4, 0, 4, -1]), [u(2, 3)]),
        (
            "take-axis-wrap",
            lambda x: tp.take(x, [[3], [-4]], axis=1, mode="wrap"),
            lambda x: np.take(x, [[3], [-4]], axis=1, mode="wrap"),
            [u(2, 3)],
        ),
        (
            "take_along_axis",
            lambda x: tp.take_along_axis(x, _IDX, 1),
            lambda x: np.take_along_axis(x, _IDX, 1),
            [u(2, 3)],
        ),
        ("kron", tp.kron, np.kron, [u(2, 3), u(2, 2)]),
        ("kron-1d-2d", tp.kron, np.kron, [u(3), u(2, 2)]),
        ("cross", tp.cross, np.cross, [u(4, 3), u(3)]),
        (
            "cross-axes",
            lambda a, b: tp.cross(a, b, axisa=0, axisc=0),
            lambda a, b: np.cross(a, b, axisa=0, axisc=0),
            [u(3, 2), u(2, 3)],
        ),
        ("diff", tp.diff, np.diff, [u(2, 4)]),
        (
            "diff-n2-prepend",
            lambda x: tp.diff(x, 2, axis=0, prepend=0.5),
            lambda x: np.diff(x, 2, axis=0, prepend=0.5),
            [u(3, 2)],
        ),
        ("diff-append", lambda x, y: tp.diff(x, append=y), lambda x, y: np.diff(x, append=y), [u(2, 3), u(2, 1)]),
        ("average", lambda x: tp.average(x, axis=0), lambda x: np.average(x, axis=0), [u(2, 3)]),
        ("average-weights", lambda x, w: tp.average(x, 1, w), lambda x, w: np.average(x, 1, w), [u(2, 3), pos(3)]),
        (
            "average-returned",
            lambda x, w: tp.average(x, None, w, True)[1] * 1.0,
            lambda x, w: np.average(x, None, w, True)[1],
            [u(2, 3), pos(2, 3)],
        ),
        (
            "nansum",
            lambda x: tp.nansum(x, axis=1, keepdims=True),
            lambda x: np.nansum(x, axis=1, keepdims=True),
            [u(2, 3)],
        ),
        ("sort", tp.sort, np.sort, [u(3, 4)]),
        ("sort-axis0", lambda x: tp.sort(x, axis=0), lambda x: np.sort(x, axis=0), [u(3, 4)]),
        ("sort-flat", lambda x: tp.sort(x, axis=None), lambda x: np.sort(x, axis=None), [u(3, 4)]),
        ("partition", lambda x: tp.partition(x, 2), lambda x: np.partition(x, 2), [u(3, 5)]),
        (
            "partition-kths",
            lambda x: tp.partition(x, (0, 3), axis=0),
            lambda x: np.partition(x, (0, 3), axis=0),
            [u(5, 2)],
        ),
        ("mod", lambda x: tp.mod(x, 0.7), lambda x: np.mod(x, 0.7), [np.array([0.1, 0.5, 1.2, -0.3])]),
    ]
    for id, fn, ref, args in items:
        yield Case(id, None, fn, ref, args)


def all_cases():
    return [*row_cases(), *composite_cases()]

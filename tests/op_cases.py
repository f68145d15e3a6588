"""Test cases generated from the op table: every primitive (and composite) with its inputs.

A case is (id, opcode or None for a composite, function on Tensors, NumPy reference, inputs).
Elementwise and reduction cases come straight from the rows (domain, arity); linear-algebra,
shape and composite ops list their shapes here. `test_every_op_is_covered` keeps this honest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

import tape as tp
from tape.ops import OPS, GroupOp, Op
from tape.ops.registry import apply
from tape.ops.shape import IDENTITY, INDEX_ADD


class Case(NamedTuple):
    id: str
    code: int | None
    fn: Callable
    ref: Callable
    args: list


BINARY_SHAPES = [((), ()), ((3,), (3,)), ((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3))]
UNARY_SHAPES = [(), (3,), (2, 3)]
REDUCE_AXES = [None, 0, 1, -1, (0, 2)]
PUBLIC = {"neg": "negative", "sub": "subtract", "mul": "multiply", "div": "divide", "pow": "power", "norm": "norm2"}


def _rng():
    return np.random.default_rng(1234)


def _uniform(rng, shape, domain):
    return rng.uniform(*domain, size=shape)


def _public(d):
    name = PUBLIC.get(d.name, d.name)
    return getattr(tp, name) if hasattr(tp, name) else getattr(tp.ops.reduce, name)


def elementwise_cases():
    rng = _rng()
    for code in sorted(GroupOp.ELEMENTWISE & OPS.keys()):
        d = OPS[code]
        if code == Op.WHERE:
            for sc, sx, sy in [((3,), (3,), (3,)), ((2, 3), (3,), ()), ((2, 1), (1, 3), (2, 3))]:
                cond = rng.uniform(size=sc) > 0.5
                yield Case(
                    f"where-{sc}-{sx}-{sy}",
                    code,
                    lambda x, y, c=cond: tp.where(c, x, y),
                    lambda x, y, c=cond: np.where(c, x, y),
                    [_uniform(rng, sx, d.domain), _uniform(rng, sy, d.domain)],
                )
            continue
        fn = _public(d)
        shapes = BINARY_SHAPES if code in GroupOp.BINARY else [(s,) for s in UNARY_SHAPES]
        for shp in shapes:
            if code == Op.SIGN:
                continue  # zero gradient: covered by test_sign_has_zero_gradient
            yield Case(f"{d.name}-{shp}", code, fn, d.forward, [_uniform(rng, s, d.domain) for s in shp])


def reduce_cases():
    rng = _rng()
    for code in sorted(GroupOp.REDUCE & OPS.keys()):
        d = OPS[code]
        fn = _public(d)
        ref = {"norm2": lambda x, axis=None, keepdims=False: np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))}.get(
            PUBLIC.get(d.name, d.name), getattr(np, d.name, None)
        )
        x0 = _uniform(rng, (), (0.5, 2.0))
        yield Case(f"{d.name}-scalar", code, fn, ref, [x0])
        for axis in REDUCE_AXES:
            for keepdims in (False, True):
                x = _uniform(rng, (2, 3, 4), (0.5, 2.0) if code == Op.PROD else d.domain)
                yield Case(
                    f"{d.name}-axis{axis}-keep{keepdims}",
                    code,
                    lambda x, a=axis, k=keepdims, f=fn: f(x, axis=a, keepdims=k),
                    lambda x, a=axis, k=keepdims, f=ref: f(x, axis=a, keepdims=k),
                    [x],
                )


def _well_conditioned(rng, shape):
    n = shape[-1]
    return rng.uniform(-0.5, 0.5, size=shape) + 3 * np.eye(n)


def explicit_cases():
    rng = _rng()
    u = lambda *s: rng.uniform(-1, 1, size=s)  # noqa: E731

    def case(id, code, fn, ref, *args):
        return Case(id, code, fn, ref, list(args))

    # matmul: 1-D promotion on either side, 2-D, batched, broadcast batches
    for sa, sb in [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
                   ((5, 2, 3), (5, 3, 4)), ((2, 1, 2, 3), (4, 3, 2)), ((3,), (5, 3, 2))]:  # fmt: skip
        yield case(f"matmul-{sa}-{sb}", Op.MATMUL, tp.matmul, np.matmul, u(*sa), u(*sb))
    for sa, sb in [((), (3,)), ((3,), ()), ((3,), (3,)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((2, 3, 4), (5, 4, 2))]:
        yield case(f"dot-{sa}-{sb}", Op.DOT, tp.dot, np.dot, u(*sa), u(*sb))
    for sa, sb, axes in [((2, 3, 4), (3, 4, 5), 2), ((3, 2, 4), (2, 3, 5), ([1, 0], [0, 1])), ((2, 3), (4,), 0)]:
        yield case(
            f"tensordot-{sa}-{sb}-{axes}",
            Op.TENSORDOT,
            lambda a, b, ax=axes: tp.tensordot(a, b, axes=ax),
            lambda a, b, ax=axes: np.tensordot(a, b, axes=ax),
            u(*sa),
            u(*sb),
        )
    for spec, shapes in [("ij,jk->ik", [(2, 3), (3, 4)]), ("ii", [(3, 3)]), ("ii->i", [(3, 3)]), ("i,i", [(3,), (3,)]),
                         ("...ij,...jk->...ik", [(2, 2, 3), (2, 3, 4)]), ("ij->", [(2, 3)]), ("ijk->kj", [(2, 3, 4)]),
                         ("i,j->ij", [(2,), (3,)]), ("bij,bjk", [(2, 2, 3), (2, 3, 2)])]:  # fmt: skip
        yield Case(
            f"einsum-{spec}",
            Op.EINSUM,
            lambda *xs, s=spec: tp.einsum(s, *xs),
            lambda *xs, s=spec: np.einsum(s, *xs),
            [u(*s) for s in shapes],
        )
    for sa, sb in [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (2, 3, 1))]:
        yield case(f"solve-{sa}-{sb}", Op.SOLVE, tp.linalg.solve, np.linalg.solve, _well_conditioned(rng, sa), u(*sb))
    for s in [(3, 3), (2, 3, 3)]:
        yield case(f"inv-{s}", Op.INV, tp.linalg.inv, np.linalg.inv, _well_conditioned(rng, s))
        yield case(f"det-{s}", Op.DET, tp.linalg.det, np.linalg.det, _well_conditioned(rng, s))

    # shape and movement
    yield case("reshape", Op.RESHAPE, lambda x: tp.reshape(x, (3, 2)), lambda x: x.reshape(3, 2), u(2, 3))
    yield case("reshape-1", Op.RESHAPE, lambda x: x.reshape(2, -1), lambda x: x.reshape(2, -1), u(6))
    yield case(
        "transpose", Op.TRANSPOSE, lambda x: tp.transpose(x, (2, 0, 1)), lambda x: x.transpose(2, 0, 1), u(2, 3, 4)
    )
    yield case("transpose-T", Op.TRANSPOSE, lambda x: x.T, lambda x: x.T, u(2, 3))
    yield case(
        "broadcast_to",
        Op.BROADCAST_TO,
        lambda x: tp.broadcast_to(x, (2, 3)),
        lambda x: np.broadcast_to(x, (2, 3)),
        u(3),
    )
    yield case(
        "broadcast_to-col",
        Op.BROADCAST_TO,
        lambda x: tp.broadcast_to(x, (2, 3)),
        lambda x: np.broadcast_to(x, (2, 3)),
        u(2, 1),
    )
    mask = rng.uniform(size=(3, 4)) > 0.4
    for name, idx in [("slice", np.s_[1:]), ("reverse", np.s_[::-1]), ("int", np.s_[1]), ("slice-int", np.s_[:, 2]),
                      ("newaxis-ellipsis", np.s_[None, ..., 1:3]), ("int-array-repeats", np.array([0, 2, 0])),
                      ("bool-mask", mask), ("int-array-slice", (np.array([2, 0, 2]), np.s_[1:3])),
                      ("two-int-arrays", (np.array([0, 1, 1]), np.array([3, 3, 0])))]:  # fmt: skip
        yield case(f"getitem-{name}", Op.GETITEM, lambda x, i=idx: x[i], lambda x, i=idx: x[i], u(3, 4))
    index = np.array([0, 2, 0])
    yield case(
        "index_add",
        Op.INDEX_ADD,
        lambda g: apply(INDEX_ADD, (g,), {"idx": index, "shape": (4,)}),
        lambda g: np.bincount(index, weights=g, minlength=4),
        u(3),
    )
    yield case(
        "concatenate-0",
        Op.CONCATENATE,
        lambda a, b: tp.concatenate([a, b]),
        lambda a, b: np.concatenate([a, b]),
        u(2, 3),
        u(1, 3),
    )
    yield case(
        "concatenate-1",
        Op.CONCATENATE,
        lambda a, b, c: tp.concatenate([a, b, c], axis=1),
        lambda a, b, c: np.concatenate([a, b, c], axis=1),
        u(2, 3),
        u(2, 2),
        u(2, 1),
    )
    yield case("pad-1d", Op.PAD, lambda x: tp.pad(x, (1, 2)), lambda x: np.pad(x, (1, 2)), u(3))
    yield case("pad-2d", Op.PAD, lambda x: tp.pad(x, ((1, 0), (0, 2))), lambda x: np.pad(x, ((1, 0), (0, 2))), u(2, 3))
    yield case("astype", Op.ASTYPE, lambda x: tp.astype(x, np.float64) * 2, lambda x: x * 2, u(3))
    yield case("identity", Op.IDENTITY, lambda x: apply(IDENTITY, (x,)) * 2, lambda x: x * 2, u(3))
    yield case("to-cpu", Op.TO_DEVICE, lambda x: x.to("cpu") * 2, lambda x: x * 2, u(3))


def composite_cases():
    rng = _rng()
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
    return [*elementwise_cases(), *reduce_cases(), *explicit_cases(), *composite_cases()]

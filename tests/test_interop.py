"""NumPy dispatch (API §4): NumPy functions on Tensors run tape's ops, or refuse clearly."""

import numpy as np
import pytest

import tape as tp
from tape.interop import NUMPY
from tape.testing import check_grads

rng = np.random.default_rng(0)
UFUNCS = {f for f in NUMPY if isinstance(f, np.ufunc)}
FUNCTIONS = {f for f in NUMPY if not isinstance(f, np.ufunc)}


def _call_ufunc(ufunc, x, y):
    return ufunc(x) if ufunc.nin == 1 else ufunc(x, y)


@pytest.mark.parametrize("ufunc", sorted(UFUNCS, key=lambda u: u.__name__), ids=lambda u: u.__name__)
def test_every_dispatched_ufunc_matches_numpy(ufunc):
    x = rng.uniform(0.2, 0.9, size=(2, 3))
    y = rng.uniform(0.2, 0.9, size=(3,)) if ufunc is not np.matmul else rng.uniform(0.2, 0.9, size=(3, 2))
    if ufunc is np.arccosh:  # defined from 1 up
        x = x + 1
    if ufunc.types[0][0] == "?":  # logical ufuncs take booleans
        x, y = x > 0.5, y > 0.5
    got = _call_ufunc(ufunc, tp.tensor(x), tp.tensor(y))
    assert isinstance(got, tp.Tensor)
    np.testing.assert_allclose(got.numpy(), _call_ufunc(ufunc, x, y))


DIFFERENTIABLE_FUNCTIONS = [
    (np.sum, lambda x: np.sum(x, axis=0)),
    (np.prod, lambda x: np.prod(x, axis=1, keepdims=True)),
    (np.max, lambda x: np.max(x, axis=1)),
    (np.min, np.min),
    (np.amax, lambda x: np.amax(x)),
    (np.amin, lambda x: np.amin(x, axis=0)),
    (np.mean, lambda x: np.mean(x, axis=1)),
    (np.var, lambda x: np.var(x, ddof=1)),
    (np.std, lambda x: np.std(x, axis=0)),
    (np.dot, lambda x: np.dot(x, x.T)),
    (np.inner, lambda x: np.inner(x, x)),
    (np.outer, lambda x: np.outer(x, x[0])),
    (np.tensordot, lambda x: np.tensordot(x, x, axes=([1], [1]))),
    (np.einsum, lambda x: np.einsum("ij,ij->i", x, x)),
    (np.trace, lambda x: np.trace(x[:, :2])),
    (np.reshape, lambda x: np.reshape(x, (3, 2))),
    (np.ravel, np.ravel),
    (np.transpose, np.transpose),
    (np.swapaxes, lambda x: np.swapaxes(x, 0, 1)),
    (np.moveaxis, lambda x: np.moveaxis(x, 0, -1)),
    (np.expand_dims, lambda x: np.expand_dims(x, 0)),
    (np.squeeze, lambda x: np.squeeze(x[None])),
    (np.broadcast_to, lambda x: np.broadcast_to(x, (4, 2, 3))),
    (np.concatenate, lambda x: np.concatenate([x, 2 * x], axis=1)),
    (np.stack, lambda x: np.stack([x, x * x])),
    (np.split, lambda x: np.split(x, 3, axis=1)[1]),
    (np.flip, lambda x: np.flip(x, 1)),
    (np.pad, lambda x: np.pad(x, 1)),
    (np.where, lambda x: np.where(x > 0.5, x, -x)),
    (np.clip, lambda x: np.clip(x, 0.3, 0.7)),
    (np.linalg.solve, lambda x: np.linalg.solve(x[:, :2] + 2 * np.eye(2), x[:, 2])),
    (np.linalg.inv, lambda x: np.linalg.inv(x[:, :2] + 2 * np.eye(2))),
    (np.linalg.det, lambda x: np.linalg.det(x[:, :2] + 2 * np.eye(2))),
    (np.linalg.norm, np.linalg.norm),
    # issue 12 (part A)
    (np.round, lambda x: np.round(x * 10, decimals=1) * x),
    (np.around, lambda x: np.around(x, 1) + x),
    (np.sinc, np.sinc),
    (np.nan_to_num, lambda x: np.nan_to_num(x, nan=0.0)),
    (np.real, np.real),
    (np.real_if_close, np.real_if_close),
    (np.imag, lambda x: np.imag(x) + x),
    (np.angle, lambda x: np.angle(x - 0.5) + x),
    (np.atleast_1d, np.atleast_1d),
    (np.atleast_2d, lambda x: np.atleast_2d(x[0])),
    (np.atleast_3d, np.atleast_3d),
    (np.hstack, lambda x: np.hstack([x, x[:, :1]])),
    (np.vstack, lambda x: np.vstack((x, x[0]))),
    (np.dstack, lambda x: np.dstack([x, x])),
    (np.column_stack, lambda x: np.column_stack([x[0], x[1] * x[0]])),
    (np.repeat, lambda x: np.repeat(x, 2, axis=0)),
    (np.tile, lambda x: np.tile(x, (2, 2))),
    (np.roll, lambda x: np.roll(x, -1, axis=1)),
    (np.rot90, lambda x: np.rot90(x, k=3)),
    (np.rollaxis, lambda x: np.rollaxis(x, 1)),
    (np.fliplr, np.fliplr),
    (np.flipud, np.flipud),
    (np.array_split, lambda x: np.array_split(x, 2, axis=1)[0]),
    (np.hsplit, lambda x: np.hsplit(x, 3)[2]),
    (np.vsplit, lambda x: np.vsplit(x, 2)[1]),
    (np.dsplit, lambda x: np.dsplit(x[:, :, None] * x[:, None, :], [1])[1]),
    (np.diag, lambda x: np.diag(np.diag(x))),
    (np.diagonal, lambda x: np.diagonal(x, offset=1)),
    (np.tril, lambda x: np.tril(x, k=1)),
    (np.triu, np.triu),
    (np.take, lambda x: np.take(x, [0, 5, 5], mode="raise")),
    (np.take_along_axis, lambda x: np.take_along_axis(x, np.array([[2], [0]]), axis=1)),
    (np.kron, lambda x: np.kron(x, x[:, :2])),
    (np.cross, lambda x: np.cross(x, x[::-1])),
    (np.cumsum, lambda x: np.cumsum(x, axis=1)),
    (np.cumprod, np.cumprod),
    (np.diff, lambda x: np.diff(x, n=2, axis=1)),
    (np.average, lambda x: np.average(x, axis=1, weights=x[0])),
    (np.nansum, lambda x: np.nansum(x, axis=0, keepdims=True)),
    (np.sort, lambda x: np.sort(x, axis=None)),
    (np.partition, lambda x: np.partition(x, 1, axis=1)),
]


@pytest.mark.parametrize("fn, use", DIFFERENTIABLE_FUNCTIONS, ids=lambda v: getattr(v, "__name__", ""))
def test_dispatched_functions_match_numpy_and_differentiate(fn, use):
    x = rng.uniform(0.2, 0.9, size=(2, 3))
    np.testing.assert_allclose(use(tp.tensor(x)).numpy(), use(x), rtol=1e-12)
    check_grads(use, [x])


def test_the_tables_cover_what_the_tests_exercise():
    tested = {fn for fn, _ in DIFFERENTIABLE_FUNCTIONS}
    values_only = {np.zeros_like, np.ones_like, np.empty_like, np.full_like, np.shape, np.ndim, np.size, np.argmax}
    values_only |= {np.argmin, np.allclose, np.isclose, np.array_equal, np.result_type, np.may_share_memory}
    assert set(FUNCTIONS) - tested - values_only == set()


def test_value_functions_return_values_without_history():
    x = tp.tensor([[1.0, 5.0], [3.0, 2.0]], requires_grad=True)
    with tp.record():
        assert np.shape(x) == (2, 2) and np.ndim(x) == 2 and np.size(x) == 4
        assert int(np.argmax(x)) == 1 and not np.zeros_like(x).requires_grad
        assert np.allclose(x, x) and np.full_like(x, 7.0).tolist() == [[7.0, 7.0], [7.0, 7.0]]


def test_unimplemented_numpy_function_names_itself():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"np\.unwrap is not implemented by tape"):
        np.unwrap(x)
    with pytest.raises(TypeError, match=r"np\.linalg\.svd is not implemented by tape"):
        np.linalg.svd(np.outer(x, x))
    with pytest.raises(TypeError, match=r"np\.spacing is not implemented by tape"):
        np.spacing(x)


def test_out_and_ufunc_methods_are_refused():
    x = tp.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match=r"np\.add\.reduce is not supported"):
        np.add.reduce(x)
    with pytest.raises(TypeError, match=r"out=\.\.\."):
        np.sin(x, out=np.empty(2))
    with pytest.raises(TypeError, match=r"np\.sum: the arguments \['out'\]"):
        np.sum(x, out=np.empty(()))


def test_ndarray_on_the_left_dispatches_to_tape():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record():
        y = np.array([3.0, 4.0]) * x + np.float64(1.0)
        s = np.sum(y)
    assert isinstance(y, tp.Tensor) and y.requires_grad
    s.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 4.0])

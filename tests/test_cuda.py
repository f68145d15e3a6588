"""The CUDA path (API §7): CuPy arrays through the same ops, equal to the CPU. Skipped without a GPU."""

import numpy as np
import pytest

import tape as tp

pytestmark = pytest.mark.skipif(not tp.cuda_available(), reason="needs CuPy and a CUDA GPU")


def _loss(x, w):
    h = tp.tanh(x @ w)
    return tp.sum(tp.softmax(h, axis=-1) * tp.exp(-(h * h))) + tp.norm(w)


def test_gradients_on_the_gpu_equal_the_cpu():
    rng = np.random.default_rng(0)
    xs, ws = rng.standard_normal((16, 8)), rng.standard_normal((8, 4))
    grads = {}
    for device in ("cpu", "cuda"):
        x = tp.tensor(xs, device=device)
        w = tp.tensor(ws, device=device, requires_grad=True)
        with tp.record():
            loss = _loss(x, w)
        loss.backward()
        assert w.grad.device == device
        grads[device] = w.grad.numpy()
    np.testing.assert_allclose(grads["cuda"], grads["cpu"], rtol=1e-10)


def test_moving_between_devices_is_differentiable():
    x = tp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with tp.record():
        y = tp.sum(tp.sin(x.to("cuda")) * 2.0).to("cpu")
    y.backward()
    assert x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 2.0 * np.cos([1.0, 2.0, 3.0]))


def test_mixed_devices_name_both():
    with pytest.raises(RuntimeError, match="different devices.*cpu, cuda"):
        tp.add(tp.ones(2), tp.ones(2, device="cuda"))

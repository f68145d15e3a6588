"""Write the notebooks in this folder from the cell lists below: ``python notebooks/build.py``.

The notebooks are generated so that they are reviewed as code: a change to a notebook is a change
to this file, and ``tests/test_notebooks.py`` checks that the committed ``.ipynb`` files are what
this script writes (then executes each of them). They are written without outputs (see the
README's "Notebooks" section for why); open them in Jupyter and run them top to bottom.

Each notebook is a list of cells: ``md(...)`` for Markdown, ``code(...)`` for Python. Text is
dedented, so cells can be written indented in this file. ``FIGURES`` says how many figures each
notebook draws; the test checks that executing it shows at least that many.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text: str):
    return new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text: str):
    return new_code_cell(textwrap.dedent(text).strip("\n"))


SETUP = code(
    """
    %matplotlib inline
    import matplotlib.pyplot as plt
    import numpy as np

    import tape as tp
    """
)

NOTEBOOKS: dict[str, list] = {}
FIGURES: dict[str, int] = {}

# ------------------------------------------------------------------------------------------------
# 01: Dive into Deep Learning §2.5, PyTorch edition (reference 001), cell for cell.

NOTEBOOKS["01_autodiff_d2l"] = [
    md(
        """
        # 01 · Automatic differentiation, as in *Dive into Deep Learning* §2.5

        **Follows:** reference 001, the automatic-differentiation chapter of *Dive into Deep Learning*,
        PyTorch edition (`shared/references/001_166aa3646f282a2c.txt`). Every cell below redoes one of
        the chapter's cells (`In [n]`) with `tape`, and quotes what the chapter prints under it so the
        two can be read side by side. Where a value is known, a cell asserts it.

        The only change of habit: PyTorch records every operation on a tensor that requires grad;
        `tape` records what runs inside `with tp.record():`. Results of a record block stay
        differentiable after the block ends.
        """
    ),
    SETUP,
    md(
        """
        ## A simple example: y = 2xᵀx

        d2l `In [2]`: `x = torch.arange(4.0)` prints `tensor([0., 1., 2., 3.])`.
        """
    ),
    code(
        """
        x = tp.arange(4.0)
        x
        """
    ),
    md("d2l `In [3]`: `x.requires_grad_(True)`; `x.grad` is `None` until a backward pass reaches `x`."),
    code(
        """
        x.requires_grad_(True)
        assert x.grad is None
        print(x.grad)
        """
    ),
    md("d2l `In [4]`: `y = 2 * torch.dot(x, x)` prints `tensor(28., grad_fn=<MulBackward0>)`."),
    code(
        """
        with tp.record() as t:
            y = 2 * tp.dot(x, x)
        y
        """
    ),
    md(
        """
        d2l `In [5]`: `y.backward(); x.grad` prints `tensor([ 0.,  4.,  8., 12.])`. The tape can also
        show the evaluation trace: one row per recorded entry, with its value and, after the backward
        pass, its adjoint.
        """
    ),
    code(
        """
        y.backward()
        print(repr(x.grad))
        print(t)
        assert x.grad.tolist() == [0.0, 4.0, 8.0, 12.0]
        """
    ),
    md("d2l `In [6]`: the gradient of 2xᵀx is 4x: `x.grad == 4 * x` prints `tensor([True, True, True, True])`."),
    code(
        """
        check = x.grad == 4 * x
        assert bool(tp.all(check))
        check
        """
    ),
    md(
        """
        ## Gradients accumulate

        d2l `In [7]`: gradients are *added* to `.grad` (PyTorch's semantics, and `tape`'s), so the
        chapter zeroes the buffer before the next one. `x.grad.zero_(); y = x.sum(); y.backward()`
        prints `tensor([1., 1., 1., 1.])`.
        """
    ),
    code(
        """
        x.grad.zero_()
        with tp.record():
            y = x.sum()
        y.backward()
        assert x.grad.tolist() == [1.0, 1.0, 1.0, 1.0]
        x.grad
        """
    ),
    md(
        """
        ## Backward for non-scalar variables

        d2l `In [11]`: for a vector `y`, `backward` needs a seed: `y.backward(gradient=torch.ones(len(y)))`
        computes vᵀJ with v = 1, the sum of the rows of the Jacobian. It prints `tensor([0., 2., 4., 6.])`.
        """
    ),
    code(
        """
        x.grad.zero_()
        with tp.record():
            y = x * x
        y.backward(gradient=tp.ones(len(y)))
        assert x.grad.tolist() == [0.0, 2.0, 4.0, 6.0]
        x.grad
        """
    ),
    md(
        """
        ## Detaching computation

        d2l `In [14]`: with `u = y.detach()`, `z = u * x` treats `u` as a constant, so the gradient of
        `z.sum()` is `u`, not 3x². The chapter prints `tensor([True, True, True, True])`.
        In `tape` the `sum` is recorded too, so it goes inside the block (or in a second block: a
        result of one block feeds the next).
        """
    ),
    code(
        """
        x.grad.zero_()
        with tp.record() as t:
            y = x * x
            u = y.detach()
            z = u * x
            total = z.sum()
        total.backward()
        print(t)
        check = x.grad == u
        assert bool(tp.all(check))
        check
        """
    ),
    md(
        """
        d2l `In [15]`: the history leading to `y` is still there, so `y.sum().backward()` gives 2x
        (`tensor([True, True, True, True])`). Here `y.sum()` is recorded in a second block whose
        backward pass reaches `x` through the first one.
        """
    ),
    code(
        """
        x.grad.zero_()
        with tp.record():
            y_total = y.sum()
        y_total.backward()
        check = x.grad == 2 * x
        assert bool(tp.all(check))
        check
        """
    ),
    md(
        """
        ## Gradients through Python control flow

        d2l `In [16]`: the number of `while` iterations and the `if` branch depend on the input.
        `tape` records whatever path the Python code takes. (`tape`'s tensors have no `.norm()`
        method; `tp.norm(b)` is NumPy's `np.linalg.norm`.)
        """
    ),
    code(
        """
        def f(a):
            b = a * 2
            while tp.norm(b) < 1000:
                b = b * 2
            if b.sum() > 0:
                c = b
            else:
                c = 100 * b
            return c
        """
    ),
    md(
        """
        d2l `In [17]` and `In [18]`: `a` is a random scalar; f is linear in `a` with a piecewise
        constant slope, so `a.grad == d / a` prints `tensor(True)`. The trace shows the path this `a`
        took: the `while` loop, unrolled.
        """
    ),
    code(
        """
        tp.manual_seed(0)
        a = tp.randn((), requires_grad=True)
        with tp.record() as t:
            d = f(a)
        d.backward()
        print(t)
        check = a.grad == d / a
        assert bool(check)
        check
        """
    ),
    md(
        """
        The same check for inputs on both sides of the `if` (a negative `a` takes the `100 * b` branch)
        and for very different loop counts:
        """
    ),
    code(
        """
        for value in [-3.0, -1e-3, 2e-4, 0.7, 5.0]:
            a = tp.tensor(value, requires_grad=True)
            with tp.record() as t:
                d = f(a)
            d.backward()
            assert bool(a.grad == d / a), value
            print(f"a = {value:>7}: {len(t):2d} entries recorded, a.grad = {a.grad.item():>10.0f} = d / a")
        """
    ),
    md(
        """
        ## Exercise: plot sin(x) and its derivative, without using cos

        The chapter's last exercise (listed in its DJL edition, reference 004, exercise 5). The
        derivative comes from the backward pass of the recorded `sin`; `cos` is used only to check it.
        """
    ),
    code(
        """
        xs = tp.linspace(-2 * np.pi, 2 * np.pi, 201, requires_grad=True)
        with tp.record():
            ys = tp.sin(xs)
        ys.backward(gradient=tp.ones_like(ys))  # the derivative of each element: J is diagonal
        dydx = xs.grad.numpy()

        assert np.max(np.abs(dydx - np.cos(xs.numpy()))) < 1e-15

        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot(xs.numpy(), ys.numpy(), label="f(x) = sin(x)")
        ax.plot(xs.numpy(), dydx, "--", label="df/dx from tape's backward pass")
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_xlabel("x")
        ax.legend(loc="upper right")
        ax.set_title("d2l §2.5, exercise: sin and its derivative")
        plt.show()
        """
    ),
    md(
        """
        ## Summary

        d2l's four steps, in `tape`: (i) `requires_grad=True` on the variables we want derivatives for;
        (ii) record the computation of the target inside `with tp.record():`; (iii) `backward()`;
        (iv) read `.grad`. Every value the chapter prints is reproduced above.
        """
    ),
]
FIGURES["01_autodiff_d2l"] = 1

# ------------------------------------------------------------------------------------------------
# 02: the same chapter in its DJL edition (reference 004): GradientCollector and tp.record().

NOTEBOOKS["02_record_blocks_djl"] = [
    md(
        """
        # 02 · Record blocks: DJL's `GradientCollector` and `tp.record()`

        **Follows:** reference 004, *Dive into Deep Learning* §2.5 in its DJL (Java) edition
        (`shared/references/004_eae25ad84f75ac1d.txt`). DJL records inside a try-with-resources
        block, much as `tape` records inside a `with` block:

        | DJL | tape |
        |---|---|
        | `x.attachGradient()` | `x.requires_grad_()` (or `tp.tensor(..., requires_grad=True)`) |
        | `try (GradientCollector gc = ...newGradientCollector()) { ... }` | `with tp.record() as t: ...` |
        | `gc.backward(y)` (inside the block) | `y.backward()` (inside or after the block), or `t.gradient(y, x)` |
        | `x.getGradient()`: zeros before any backward pass | `x.grad`: `None` before any backward pass |
        | a backward pass **overwrites** the gradient | `backward()` **adds** to `.grad`; `t.gradient` does not |
        | `gc.backward(y)` on a vector `y`: sums `y` | `t.gradient(y, x)` sums; `y.backward()` wants `gradient=` |
        | `y.stopGradient()` | `y.detach()` or `tp.stop_gradient(y)` |

        The cells below redo the DJL chapter's cells and quote what it prints.
        """
    ),
    SETUP,
    md(
        """
        ## 2.5.1 A simple example

        DJL: `manager.arange(4f)` prints `[0., 1., 2., 3.]` (float32), and after `x.attachGradient()`,
        `x.getGradient()` prints `[0., 0., 0., 0.]`. In `tape` there is no gradient buffer until a
        backward pass writes one.
        """
    ),
    code(
        """
        x = tp.arange(4.0, dtype=tp.float32, requires_grad=True)
        print(repr(x))
        assert x.grad is None
        """
    ),
    md(
        """
        DJL: inside the collector, `y = x.dot(x).mul(2)` prints `28.`, then `gc.backward(y)`;
        afterwards `x.getGradient()` prints `[ 0.,  4.,  8., 12.]` and `.eq(x.mul(4))` prints
        `[ true,  true,  true,  true]`.
        """
    ),
    code(
        """
        with tp.record() as t:
            y = tp.dot(x, x) * 2
            print(y)
            y.backward()
        print(repr(x.grad))
        print(x.grad == x * 4)
        assert x.grad.tolist() == [0.0, 4.0, 8.0, 12.0]
        """
    ),
    md(
        """
        ## Accumulation semantics: where `tape` and DJL differ

        DJL's next cell computes `y = x.sum()` in a new collector and notes that `x.getGradient()` is
        *overwritten*: it prints `[1., 1., 1., 1.]`. `tape` follows PyTorch: `backward()` *adds* to
        `.grad`, which is what a sum of several losses needs. Without clearing, the same cell gives
        4x + 1:
        """
    ),
    code(
        """
        with tp.record():
            y = x.sum()
        y.backward()
        print("accumulated:", x.grad)
        assert x.grad.tolist() == [1.0, 5.0, 9.0, 13.0]
        """
    ),
    md(
        """
        Two ways to get DJL's `[1., 1., 1., 1.]`: clear the buffer first (`x.zero_grad()` sets it back
        to `None`, `x.grad.zero_()` zeroes it in place), or ask the tape for the gradient with
        `t.gradient(target, sources)`, which returns it without touching `.grad` (TensorFlow's
        `GradientTape` semantics).
        """
    ),
    code(
        """
        x.zero_grad()
        with tp.record():
            y = x.sum()
        y.backward()
        print("after zero_grad:", x.grad)
        assert x.grad.tolist() == [1.0, 1.0, 1.0, 1.0]

        with tp.record() as t:
            y = x.sum()
        g = t.gradient(y, x)
        print("t.gradient:     ", g, "  (x.grad untouched:", x.grad, ")")
        assert g.tolist() == [1.0, 1.0, 1.0, 1.0] and x.grad.tolist() == [1.0, 1.0, 1.0, 1.0]
        """
    ),
    md(
        """
        ## 2.5.2 Backward for non-scalar variables

        DJL: `gc.backward(y)` on the vector `y = x.mul(x)` sums its elements first, and prints
        `[0., 2., 4., 6.]`. `t.gradient` does the same. `y.backward()` on a vector refuses, as
        PyTorch's does, and says what to do; with `gradient=tp.ones(4)` it gives the same numbers.
        """
    ),
    code(
        """
        with tp.record() as t:
            y = x * x
        g = t.gradient(y, x)
        print("t.gradient(y, x):", g)
        assert g.tolist() == [0.0, 2.0, 4.0, 6.0]

        x.zero_grad()
        with tp.record():
            y = x * x
        try:
            y.backward()
        except RuntimeError as error:
            print("y.backward():", error)
        y.backward(gradient=tp.ones(4, dtype=tp.float32))
        print("y.backward(gradient=ones):", x.grad)
        assert x.grad.tolist() == [0.0, 2.0, 4.0, 6.0]
        """
    ),
    md(
        """
        ## 2.5.3 Detaching computation

        DJL: `u = y.stopGradient(); z = u.mul(x); gc.backward(z)`, then `x.getGradient().eq(u)`
        prints `[ true,  true,  true,  true]`.
        """
    ),
    code(
        """
        with tp.record() as t:
            y = x * x
            u = tp.stop_gradient(y)
            z = u * x
        g = t.gradient(z, x)
        print(g == u)
        assert bool(tp.all(g == u))
        """
    ),
    md("DJL: a backward pass on `y = x.mul(x)` alone gives 2x: `[ true,  true,  true,  true]`."),
    code(
        """
        with tp.record() as t:
            y = x * x
        g = t.gradient(y, x)
        print(g == x * 2)
        assert bool(tp.all(g == x * 2))
        """
    ),
    md(
        """
        ## 2.5.4 Gradients through control flow

        DJL's `f` reads values back into the host language (`b.norm().getFloat() < 1000`); in `tape`
        a 0-d tensor works in Python's `while` and `if` directly. DJL draws `a` from a normal
        distribution with shape `(1)` and prints `[ true]` for `a.getGradient().eq(d.div(a))`.
        """
    ),
    code(
        """
        def f(a):
            b = a * 2
            while tp.norm(b) < 1000:
                b = b * 2
            if b.sum() > 0:
                c = b
            else:
                c = b * 100
            return c


        tp.manual_seed(1)
        a = tp.randn(1, requires_grad=True)
        with tp.record() as t:
            d = f(a)
            d.backward(gradient=tp.ones(1))
        print(a.grad == d / a)
        assert bool(tp.all(a.grad == d / a))
        """
    ),
    md(
        """
        ## 2.5.6 Exercises

        **Exercise 2: run the backward pass again, immediately.** The first pass released the history
        it consumed (that is what keeps memory flat); the second says so and names `retain_graph`.
        With `retain_graph=True` the second pass works, and the two passes accumulate.
        """
    ),
    code(
        """
        x.zero_grad()
        with tp.record():
            y = tp.dot(x, x) * 2
        y.backward()
        try:
            y.backward()
        except RuntimeError as error:
            print("second backward:", error)

        x.zero_grad()
        with tp.record():
            y = tp.dot(x, x) * 2
        y.backward(retain_graph=True)
        y.backward()
        print("two passes with retain_graph=True:", x.grad, "= 2 * 4x")
        assert x.grad.tolist() == [0.0, 8.0, 16.0, 24.0]
        """
    ),
    md(
        """
        **Exercise 3: `a` a random vector or matrix.** `f(a)` is then a vector or matrix, still k·a
        for one scalar k (the loop runs on the norm of the whole array). The gradient of its sum is k
        in every element, and `d / a` is k everywhere too.
        """
    ),
    code(
        """
        tp.manual_seed(2)
        a = tp.randn(2, 3, requires_grad=True)
        with tp.record() as t:
            d = f(a)
        g = t.gradient(d, a)  # d is summed first, as DJL's gc.backward does
        k = (d / a).numpy()  # k·a / a, to rounding
        print(g)
        assert np.allclose(k, k.flat[0], rtol=1e-14) and np.allclose(g.numpy(), k, rtol=1e-14)
        """
    ),
    md(
        """
        **Exercise 1: why is the second derivative more expensive than the first?** Because it
        differentiates the first derivative's computation, which is itself a program as long as the
        function. With `create_graph=True` the backward pass is recorded too: the tape grows by the
        backward pass's entries, and the second backward pass walks all of them.
        """
    ),
    code(
        """
        xs = tp.tensor(0.5, requires_grad=True)
        with tp.record() as t:
            ys = tp.sin(tp.exp(xs) * xs)
        n_first = len(t)
        with tp.record() as t2:
            (dy,) = tp.grads(ys, xs, create_graph=True)
        (d2y,) = tp.grads(dy, xs)
        print(f"f recorded {n_first} entries; its recorded backward pass {len(t2)} more")

        # closed forms: f = sin(u), u = x e^x, u' = (1 + x) e^x, u'' = (2 + x) e^x
        x0 = 0.5
        u, du, ddu = x0 * np.exp(x0), (1 + x0) * np.exp(x0), (2 + x0) * np.exp(x0)
        assert np.isclose(dy.item(), np.cos(u) * du)
        assert np.isclose(d2y.item(), -np.sin(u) * du**2 + np.cos(u) * ddu)
        print(f"f'(0.5) = {dy.item():.6f}, f''(0.5) = {d2y.item():.6f} (closed forms agree)")
        """
    ),
    md(
        """
        **Exercise 4: another control-flow example.** Newton's iteration for √a,
        `r ← (r + a / r) / 2` from r = (1 + a) / 2 until r² is a to 1e-12: a `while` loop whose trip
        count depends on `a`. `tape` differentiates the iterations that ran; at convergence that is
        1 / (2√a).
        """
    ),
    code(
        """
        def newton_sqrt(a):
            r, iterations = (1 + a) / 2, 0
            while abs(float(r * r - a)) > 1e-12 * float(a):
                r = (r + a / r) / 2
                iterations += 1
            return r, iterations


        values = np.linspace(0.05, 4.0, 80)
        roots, slopes, trips = [], [], []
        for value in values:
            a = tp.tensor(value, requires_grad=True)
            with tp.record():
                r, iterations = newton_sqrt(a)
            r.backward()
            roots.append(r.item())
            slopes.append(a.grad.item())
            trips.append(iterations)
        assert np.allclose(roots, np.sqrt(values)) and np.allclose(slopes, 0.5 / np.sqrt(values))

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
        ax1.plot(values, roots, label="√a by Newton's iteration")
        ax1.plot(values, slopes, label="d√a/da from tape")
        ax1.plot(values, 0.5 / np.sqrt(values), "k:", label="1 / (2√a)")
        ax1.set_ylim(0, 3)
        ax1.set_xlabel("a")
        ax1.legend()
        ax2.step(values, trips, where="mid")
        ax2.set_xlabel("a")
        ax2.set_ylabel("iterations recorded")
        fig.suptitle("DJL §2.5, exercise 4: a gradient through a while loop")
        plt.show()
        """
    ),
]
FIGURES["02_record_blocks_djl"] = 1

# ------------------------------------------------------------------------------------------------
# 03: flashlight's "Introduction to Autograd" (reference 000).

NOTEBOOKS["03_variables_flashlight"] = [
    md(
        """
        # 03 · Variables, gradients and memory, as in flashlight's autograd tutorial

        **Follows:** reference 000, flashlight's *Introduction to Autograd* (C++ on ArrayFire,
        `shared/references/000_5c4009331857a9fa.txt`). Its `fl::Variable` is a shallow handle on an
        array plus what differentiation needs; so is `tape`'s `Tensor`. The tutorial's memory notes
        (ops that need not keep their inputs, a graph freed during the backward pass,
        `retainGraph`) are measured here with `tracemalloc`, which sees every NumPy array.
        """
    ),
    SETUP,
    code(
        """
        import gc
        import tracemalloc

        MiB = 2**20
        tracemalloc.start()


        def held_since(base):
            \"\"\"MiB allocated now beyond `base` (a tracemalloc reading), after a garbage collection.\"\"\"
            gc.collect()
            return (tracemalloc.get_traced_memory()[0] - base) / MiB


        def now():
            gc.collect()
            return tracemalloc.get_traced_memory()[0]
        """
    ),
    md(
        """
        ## Variable: a handle on an array

        flashlight: `fl::Variable(af::range(1.0, af::dim4(2, 3)), true)` prints rows `0 0 0` and
        `1 1 1`; `dims()` is `2 3 1 1`, `elements()` is `6`, `type()` is `0` (float32).
        `array` is the underlying NumPy array, without a copy.
        """
    ),
    code(
        """
        var = tp.tensor(np.arange(2.0)[:, None] * np.ones((1, 3)), dtype=tp.float32, requires_grad=True)
        print(var.array)
        print(var.shape, var.size, var.dtype)
        assert var.shape == (2, 3) and var.size == 6 and var.dtype == np.float32
        """
    ),
    md(
        """
        flashlight: copying a Variable is shallow: after `a.array() = af::constant(2.0, 3, 2)`, `b`
        sees `2.0000` everywhere. In Python `b = a` is the same handle; `a.detach()` is a new handle
        on the *same* array (no history); `tp.tensor(a)` copies.
        """
    ),
    code(
        """
        a = tp.tensor(np.random.default_rng(0).random((3, 2)))
        b = a
        c = a.detach()
        d = tp.tensor(a)
        a.array[...] = 2.0
        print("b:", b.array.tolist())
        print("c = a.detach():", c.array.tolist())
        print("d = tp.tensor(a):", np.round(d.array, 3).tolist())
        assert np.all(b.array == 2.0) and np.all(c.array == 2.0) and not np.any(d.array == 2.0)
        """
    ),
    md(
        """
        ## Operations on Variables

        flashlight: `exp(var)` prints `1.0000` in the first row and `2.7183` in the second;
        `A * B` with A ones and B twos prints `2.0000` everywhere.
        """
    ),
    code(
        """
        with tp.record() as t:
            expVar = tp.exp(var)
        print(expVar.array)
        assert np.allclose(expVar.numpy(), [[1.0] * 3, [2.7183] * 3], atol=5e-5)

        A = tp.full((2, 3), 1.0, dtype=tp.float32)  # isCalcGrad = false
        B = tp.full((2, 3), 2.0, dtype=tp.float32, requires_grad=True)  # isCalcGrad = true
        with tp.record():
            AB = A * B
        print(AB.array)
        assert np.all(AB.numpy() == 2.0)
        """
    ),
    md(
        """
        ## Automatic differentiation

        flashlight: `expVar.backward()` fills `expVar.grad()` with ones and `var.grad()` with exp(var):
        rows `1.0000` and `2.7183`. For a non-scalar output flashlight seeds with ones implicitly;
        `tape` follows PyTorch and asks for the seed (`gradient=`). `tape` keeps `.grad` on leaves
        only; `t.gradient` gives the gradient with respect to an intermediate (see notebook 05).
        """
    ),
    code(
        """
        expVar.backward(gradient=tp.ones_like(expVar))
        print(t.entries)
        print("var.grad:", var.grad.array)
        assert np.allclose(var.grad.numpy(), [[1.0] * 3, [2.7183] * 3], atol=5e-5)
        assert expVar.grad is None  # not a leaf
        """
    ),
    md(
        """
        flashlight then prints `ABGrad` (ones) and `AGrad` (`2.0000` everywhere), and says that
        `B.grad()` throws because B's `isCalcGrad` is false. As written, though, the listing creates
        **A** with `false` and **B** with `true`: the printed `AGrad`, 2 = ∂(A·B)/∂A = B, is what the
        input that requires grad would get if it were A. In `tape` the rule is the same, with the
        roles as declared: B (requires grad) gets ∂(A·B)/∂B = A = 1; A gets nothing (`None`, rather
        than an exception).
        """
    ),
    code(
        """
        AB.backward(gradient=tp.ones_like(AB))
        print("B.grad:", B.grad.array.tolist(), "  A.grad:", A.grad)
        assert np.all(B.grad.numpy() == 1.0) and A.grad is None

        # With both inputs requiring grad, A's gradient is flashlight's printed AGrad: 2 everywhere.
        A.requires_grad_(True)
        B.zero_grad()
        with tp.record():
            AB = A * B
        AB.backward(gradient=tp.ones_like(AB))
        print("A.grad:", A.grad.array.tolist())
        assert np.all(A.grad.numpy() == 2.0)
        """
    ),
    md(
        """
        If no input requires a gradient, nothing is recorded (flashlight: no `gradFunc` is kept), and
        asking for a backward pass says why:
        """
    ),
    code(
        """
        P, Q = tp.ones((2, 3)), tp.full((2, 3), 2.0)
        with tp.record() as t:
            PQ = P * Q
        print("entries recorded:", len(t))
        try:
            PQ.backward(gradient=tp.ones_like(PQ))
        except RuntimeError as error:
            print(error)
        assert len(t) == 0
        """
    ),
    md(
        """
        ## Memory an operation does not need to keep

        flashlight: "some autograd functions do not need to keep their input data after the forward
        pass in order to compute their gradient (e.g. sum (+), transpose)", so
        `C = transpose(transpose(A))` on a 1000 × 1000 float32 A (4 MB) stores no intermediate array
        (the tutorial counts 8 MB in all: A and C).

        Below, each expression is recorded on that A with only its result kept; the table shows what
        it holds beyond A: the result itself and what the tape keeps for the backward pass.
        `transpose` returns a view (no new array at all), `+` and multiplication by a constant keep
        nothing, `exp` and `tanh` keep their output (which is the result anyway), `log` and `sin`
        keep their input, which would otherwise be freed.
        """
    ),
    code(
        """
        rng = np.random.default_rng(0)
        A = tp.tensor(rng.random((1000, 1000), dtype=np.float32), requires_grad=True)
        size = A.array.nbytes / MiB

        cases = {
            "transpose(transpose(A))": lambda A: tp.transpose(tp.transpose(A)),
            "1 + 2·A": lambda A: 1.0 + 2.0 * A,
            "exp(1 + 2·A)": lambda A: tp.exp(1.0 + 2.0 * A),
            "tanh(2·A)": lambda A: tp.tanh(2.0 * A),
            "log(1 + 2·A)": lambda A: tp.log(1.0 + 2.0 * A),
            "sin(2·A)": lambda A: tp.sin(2.0 * A),
            "sum(A)": lambda A: tp.sum(A),
        }
        rows = {}
        for name, fn in cases.items():
            base = now()
            with tp.record():
                result = fn(A)
            total = held_since(base)
            own = 0.0 if np.shares_memory(result.array, A.array) else result.array.nbytes / MiB
            rows[name] = (own, total - own)
            del result
        print(f"A: {size:.2f} MiB")
        print(f"{'recorded':<26}{'result (MiB)':>14}{'kept for backward (MiB)':>26}")
        for name, (own, kept) in rows.items():
            print(f"{name:<26}{own:>14.2f}{kept:>26.2f}")

        for name in ["transpose(transpose(A))", "1 + 2·A", "exp(1 + 2·A)", "tanh(2·A)", "sum(A)"]:
            assert rows[name][1] < 0.05 * size, name
        for name in ["log(1 + 2·A)", "sin(2·A)"]:
            assert abs(rows[name][1] - size) < 0.05 * size, name
        """
    ),
    code(
        """
        names = list(rows)
        own = [rows[n][0] for n in names]
        kept = [rows[n][1] for n in names]
        fig, ax = plt.subplots(figsize=(8, 3.5))
        ax.barh(names, own, label="the result")
        ax.barh(names, kept, left=own, label="kept by the tape for the backward pass")
        ax.axvline(size, color="grey", ls=":", lw=1)
        ax.invert_yaxis()
        ax.set_xlabel("MiB held after the record block (A itself not counted; A = 3.8 MiB)")
        ax.legend(loc="upper right")
        ax.set_title("What one recorded expression keeps (tracemalloc)")
        plt.show()
        """
    ),
    md(
        """
        ## Freeing the graph during the backward pass: `retain_graph`

        flashlight's example: `C = matmul(A, B); C = transpose(C); C = 1.0 + C; C.backward(false)`,
        "each Variable that is not required is cleared from the computation graph while the backward
        pass is being computed"; its intermediate E (the transpose) "can be deleted as soon as the
        gradients of D are computed". In `tape`, E is never stored at all: `transpose` and `+` keep
        nothing, and `matmul` keeps A and B, which are alive anyway. So the tutorial's graph below
        holds A, B and the result after the forward pass, and nothing more:
        """
    ),
    code(
        """
        A = tp.tensor(rng.random((1000, 1000), dtype=np.float32), requires_grad=True)
        B = tp.tensor(rng.random((1000, 1000), dtype=np.float32), requires_grad=True)

        base = now()
        with tp.record() as t:
            C = tp.matmul(A, B)
            C = tp.transpose(C)
            C = 1.0 + C
        after_forward = held_since(base)
        print(t)
        print(f"held after the forward pass, beyond A and B: {after_forward:.2f} MiB (the result C)")
        assert abs(after_forward - size) < 0.05 * size
        C.backward(gradient=tp.ones_like(C))
        del C
        """
    ),
    md(
        """
        A graph whose history does hold an array of its own shows what `retain_graph` costs. With
        `C = sin(1.0 + transpose(A @ B))`, `sin` keeps its 4 MB input. A plain backward pass frees it
        as the sweep passes; `retain_graph=True` keeps it (and the whole history) for a second pass.
        Measured: memory held after the forward pass, the peak during the backward pass, and what is
        held afterwards, beyond A, B, their gradients and C.
        """
    ),
    code(
        """
        measured = {}
        for retain in (False, True):
            A.zero_grad()
            B.zero_grad()
            base = now()
            with tp.record():
                C = tp.sin(1.0 + tp.transpose(tp.matmul(A, B)))
            forward = held_since(base)
            tracemalloc.reset_peak()
            C.backward(gradient=tp.ones_like(C), retain_graph=retain)
            peak = (tracemalloc.get_traced_memory()[1] - base) / MiB
            grads = (A.grad.array.nbytes + B.grad.array.nbytes) / MiB
            after = held_since(base) - grads
            measured[retain] = (forward, peak - grads, after)
            print(
                f"retain_graph={retain!s:<5}: after forward {forward:5.2f} MiB, "
                f"backward peak {peak - grads:5.2f} MiB (beyond the two gradients), after {after:5.2f} MiB"
            )
            del C

        # Plain: only C is left; retained: C and the 4 MB input that sin keeps.
        assert abs(measured[False][2] - size) < 0.05 * size
        assert abs(measured[True][2] - 2 * size) < 0.05 * size

        labels = ["after forward", "peak in backward", "after backward"]
        xs = np.arange(3)
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.bar(xs - 0.2, measured[False], 0.4, label="retain_graph=False (default)")
        ax.bar(xs + 0.2, measured[True], 0.4, label="retain_graph=True")
        ax.set_xticks(xs, labels)
        ax.set_ylabel("MiB beyond A, B and their gradients")
        ax.set_title("C = sin(1 + transpose(A @ B)), A and B 1000 × 1000 float32")
        ax.legend()
        plt.show()
        """
    ),
    md(
        """
        ## A function with its own gradient: `tp.primitive`

        flashlight's `gradFunc` is the lambda that turns an output's gradient into its inputs'. In
        `tape` a user declares one the same way as the built-in rules: a forward on raw arrays and a
        rule `(g, out, *inputs) -> one cotangent per input`. Here log(cosh x), written so that it does
        not overflow for large |x|, whose derivative is tanh x. It is recorded and printed under its
        own name, and `tape.testing.check_grads` compares its rule with finite differences.
        """
    ),
    code(
        """
        from tape.testing import check_grads


        @tp.primitive
        def logcosh(x):
            return np.logaddexp(x, -x) - np.log(2.0)


        logcosh.defvjp(lambda g, out, x: (g * np.tanh(x),))

        x = tp.tensor([-800.0, -1.0, 0.0, 0.5, 800.0], requires_grad=True)
        with tp.record() as t:
            y = tp.sum(logcosh(x))
        y.backward()
        print(t)
        assert np.allclose(x.grad.numpy(), np.tanh(x.numpy()))
        check_grads(lambda x: logcosh(x), [np.array([-2.0, -0.3, 0.1, 1.5])])
        print("check_grads: the rule agrees with central finite differences")
        """
    ),
    md(
        """
        ## Not reproduced: lazy JIT fusion

        The tutorial's last optimisation is ArrayFire's lazy evaluation, which fuses `2.0 * A`,
        `1.0 + B` and `log(C)` into one kernel and allocates only the final result. `tape`'s forward
        operations are eager NumPy calls; what it does instead is the table above: an intermediate
        that no rule keeps is freed as soon as the next operation has read it.
        """
    ),
]
FIGURES["03_variables_flashlight"] = 2

# ------------------------------------------------------------------------------------------------
# 04: the Southampton slides (reference 002): forward mode, reverse mode, their cost.

NOTEBOOKS["04_forward_and_reverse"] = [
    md(
        """
        # 04 · Forward mode and reverse mode

        **Follows:** reference 002, Jonathon Hare's slides *An Introduction to Automatic
        Differentiation* (University of Southampton, `shared/references/002_8eda0ed7459b05a6.txt`),
        built on the program

        ```
        a = x * y
        b = sin(x)
        z = a + b
        ```

        at the slides' point `x = Var(0.5)`, `y = Var(4.2)`. The slides derive ∂z/∂x = y + cos(x) and
        ∂z/∂y = x, four ways: forward mode by hand, dual numbers, reverse mode by hand, and a small
        `Var` graph. Each is run here, then `tape`'s `tp.jvp` (forward) and its tape (reverse), and
        all are checked against the closed form. The slides print no numbers, so the closed form is
        the reference: ∂z/∂x = 4.2 + cos 0.5 = 5.077583, ∂z/∂y = 0.5.
        """
    ),
    SETUP,
    code(
        """
        from math import cos, sin

        x, y = 0.5, 4.2
        dz_dx, dz_dy = y + cos(x), x
        print(f"closed form: dz/dx = {dz_dx:.6f}, dz/dy = {dz_dy}")
        """
    ),
    md(
        """
        ## Forward mode by hand ("Translating to code II and III")

        Each statement gets its differential: `da = y * dx + x * dy`, `db = cos(x) * dx`,
        `dz = da + db`. Seeding `dx = 1, dy = 0` gives ∂z/∂x; seeding `dx = 0, dy = 1` gives ∂z/∂y:
        one run of the program per input.
        """
    ),
    code(
        """
        def forward_by_hand(x, y, dx, dy):
            a = x * y
            da = y * dx + x * dy
            b = sin(x)
            db = cos(x) * dx
            z = a + b
            dz = da + db
            return z, dz


        z, dzx = forward_by_hand(x, y, dx=1.0, dy=0.0)
        _, dzy = forward_by_hand(x, y, dx=0.0, dy=1.0)
        print(f"z = {z:.6f}, dz/dx = {dzx:.6f}, dz/dy = {dzy:.6f}")
        assert np.isclose(dzx, dz_dx) and np.isclose(dzy, dz_dy)
        """
    ),
    md(
        """
        ## Dual numbers

        "We can keep track of the value and gradient at the same time": a number a + b·ε with
        ε² = 0 carries a value and a tangent, and each operation applies the rules of the slide
        *Making Rules*.
        """
    ),
    code(
        """
        class Dual:
            def __init__(self, value, tangent=0.0):
                self.value, self.tangent = value, tangent

            def __add__(self, other):
                return Dual(self.value + other.value, self.tangent + other.tangent)

            def __mul__(self, other):
                return Dual(self.value * other.value, other.value * self.tangent + self.value * other.tangent)

            def sin(self):
                return Dual(sin(self.value), cos(self.value) * self.tangent)


        def program(x, y):
            a = x * y
            b = x.sin()
            return a + b


        zx = program(Dual(x, 1.0), Dual(y, 0.0))
        zy = program(Dual(x, 0.0), Dual(y, 1.0))
        print(f"z = {zx.value:.6f}, dz/dx = {zx.tangent:.6f}, dz/dy = {zy.tangent:.6f}")
        assert np.isclose(zx.tangent, dz_dx) and np.isclose(zy.tangent, dz_dy)
        """
    ),
    md(
        """
        ## Forward mode in `tape`: `tp.jvp`

        `tp.jvp(f, primals, tangents)` runs `f` once on dual numbers (no tape) and returns the value
        and the directional derivative J·t. The two seeds of the slides are the two unit tangents.
        """
    ),
    code(
        """
        def f(x, y):
            a = x * y
            b = tp.sin(x)
            return a + b


        X, Y = tp.tensor(x), tp.tensor(y)
        z, tx = tp.jvp(f, (X, Y), (tp.tensor(1.0), tp.tensor(0.0)))
        _, ty = tp.jvp(f, (X, Y), (tp.tensor(0.0), tp.tensor(1.0)))
        print(f"z = {z.item():.6f}, dz/dx = {tx.item():.6f}, dz/dy = {ty.item():.6f}")
        assert np.isclose(tx.item(), dz_dx) and np.isclose(ty.item(), dz_dy)
        """
    ),
    md(
        """
        ## Reverse mode by hand ("Translating to code", adjoints)

        The chain rule turned upside down: `gz = 1`, `gb = gz`, `ga = gz`, `gy = x * ga`,
        `gx = y * ga + cos(x) * gb`. One run gives both derivatives.
        """
    ),
    code(
        """
        gz = 1.0
        gb = gz
        ga = gz
        gy = x * ga
        gx = y * ga + cos(x) * gb
        print(f"dz/dx = {gx:.6f}, dz/dy = {gy:.6f}")
        assert np.isclose(gx, dz_dx) and np.isclose(gy, dz_dy)
        """
    ),
    md(
        """
        ## The slides' `Var` graph

        Each node keeps its *children* with the weight ∂child/∂node; `grad()` sums over the children,
        caching the result in `grad_value` (the slides' code, with `__add__` and `sin` added).
        """
    ),
    code(
        """
        class Var:
            def __init__(self, value):
                self.value = value
                self.children = []
                self.grad_value = None

            def __mul__(self, other):
                z = Var(self.value * other.value)
                self.children.append((other.value, z))
                other.children.append((self.value, z))
                return z

            def __add__(self, other):
                z = Var(self.value + other.value)
                self.children.append((1.0, z))
                other.children.append((1.0, z))
                return z

            def sin(self):
                z = Var(sin(self.value))
                self.children.append((cos(self.value), z))
                return z

            def grad(self):
                if self.grad_value is None:
                    self.grad_value = sum(weight * var.grad() for weight, var in self.children)
                return self.grad_value


        vx, vy = Var(0.5), Var(4.2)
        vz = vx * vy + vx.sin()
        vz.grad_value = 1.0
        print(f"dz/dx = {vx.grad():.6f}, dz/dy = {vy.grad():.6f}")
        assert np.isclose(vx.grad(), dz_dx) and np.isclose(vy.grad(), dz_dy)
        """
    ),
    md(
        """
        ## Reverse mode in `tape`: the Wengert list

        The slides' aside: "avoid storing the children directly and instead store indices in an
        auxiliary data structure called a *Wengert list* or *tape*". That is `tape`'s data structure:
        `t.entries` is the list (op, input slots, output slot), and the trace shows each entry's value
        and, after the backward pass, its adjoint: gz, ga, gb, gy and gx of the cell above.
        """
    ),
    code(
        """
        xt = tp.tensor(x, requires_grad=True)
        yt = tp.tensor(y, requires_grad=True)
        with tp.record() as t:
            a = xt * yt
            b = tp.sin(xt)
            z = a + b
        z.backward()
        for entry in t.entries:
            print(entry)
        print()
        print(t)
        assert np.isclose(xt.grad.item(), dz_dx) and np.isclose(yt.grad.item(), dz_dy)
        """
    ),
    md(
        """
        ## Several outputs ("Limitations of reverse mode")

        For z = 2x + sin x and v = 4x + sin x, one forward-mode run with dx = 1 gives both dz/dx and
        dv/dx; reverse mode needs one sweep per output (here: two `t.gradient` calls on a persistent
        tape).
        """
    ),
    code(
        """
        def two_outputs(x):
            s = tp.sin(x)
            return tp.stack([2 * x + s, 4 * x + s])


        x0 = tp.tensor(0.5, requires_grad=True)
        _, both = tp.jvp(two_outputs, (x0,), (tp.tensor(1.0),))  # one forward run
        with tp.record(persistent=True) as t:
            zv = two_outputs(x0)
            outputs = [zv[0], zv[1]]  # indexing is an operation too: record it
        reverse = [t.gradient(out, x0).item() for out in outputs]  # one sweep per output
        print("forward mode, one run:   ", both.numpy())
        print("reverse mode, two sweeps:", reverse)
        expected = [2 + np.cos(0.5), 4 + np.cos(0.5)]
        assert np.allclose(both.numpy(), expected) and np.allclose(reverse, expected)
        """
    ),
    md(
        """
        ## The cost of forward and reverse mode for f: ℝⁿ → ℝ

        "For every variable we wish to compute the gradient with respect to, we have to run the
        *complete program* again." For f(x) = Σ log(1 + xᵢ²) · sin(xᵢ), the gradient by forward mode is
        n `tp.jvp` runs (one per unit tangent); by reverse mode it is one recorded run and one
        backward pass (`tp.grad`), whatever n. Both give the same gradient; the time of each is the
        median of 5 runs on this machine.
        """
    ),
    code(
        """
        import time


        def f(x):
            return tp.sum(tp.log1p(x * x) * tp.sin(x))


        def gradient_forward(x):
            n = x.shape[0]
            basis = np.eye(n)
            return np.array([tp.jvp(f, (x,), (tp.tensor(basis[i]),))[1].item() for i in range(n)])


        def gradient_reverse(x):
            return tp.grad(f)(x).numpy()


        def median_time(fn, x, repeats=5):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn(x)
                times.append(time.perf_counter() - start)
            return float(np.median(times))


        rng = np.random.default_rng(0)
        sizes = [1, 2, 4, 8, 16, 32, 64, 128, 256]
        forward_s, reverse_s = [], []
        for n in sizes:
            x = tp.tensor(rng.standard_normal(n))
            xs = x.numpy()
            exact = (2 * xs / (1 + xs**2)) * np.sin(xs) + np.log1p(xs**2) * np.cos(xs)
            assert np.allclose(gradient_forward(x), exact) and np.allclose(gradient_reverse(x), exact)
            forward_s.append(median_time(gradient_forward, x))
            reverse_s.append(median_time(gradient_reverse, x))
        for n, fw, rv in zip(sizes, forward_s, reverse_s):
            print(f"n = {n:4d}: forward mode {1e3 * fw:8.2f} ms ({n:3d} runs), reverse mode {1e3 * rv:6.2f} ms (1 run)")
        """
    ),
    code(
        """
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
        ax1.plot(sizes, sizes, "o-", label="forward mode: n runs of f")
        ax1.plot(sizes, [1] * len(sizes), "s-", label="reverse mode: 1 run + 1 backward pass")
        ax1.set_xscale("log", base=2)
        ax1.set_yscale("log", base=2)
        ax1.set_xlabel("n (inputs)")
        ax1.set_ylabel("runs of f for one gradient")
        ax1.legend()
        ax2.plot(sizes, [1e3 * s for s in forward_s], "o-", label="forward mode (n × tp.jvp)")
        ax2.plot(sizes, [1e3 * s for s in reverse_s], "s-", label="reverse mode (tp.grad)")
        ax2.set_xscale("log", base=2)
        ax2.set_yscale("log")
        ax2.set_xlabel("n (inputs)")
        ax2.set_ylabel("ms per gradient (median of 5)")
        ax2.legend()
        fig.suptitle("The gradient of f: ℝⁿ → ℝ, forward against reverse mode")
        plt.show()
        """
    ),
    md(
        """
        Forward mode grows linearly with n; reverse mode stays nearly flat (its arrays grow, its
        number of operations does not). For small n the two are close: forward mode builds no tape.
        The slides' last aside, trading computation for memory in reverse mode (Griewank 1992), is
        notebook 06.
        """
    ),
]
FIGURES["04_forward_and_reverse"] = 1

# ------------------------------------------------------------------------------------------------
# 05: Harrison (2019), reference 003: Baydin et al.'s Table 1 as tape prints it.

NOTEBOOKS["05_evaluation_trace"] = [
    md(
        """
        # 05 · The evaluation trace

        **Follows:** reference 003, Davan Harrison, *A Brief Introduction to Automatic
        Differentiation for Machine Learning* (UC Santa Cruz, 2019,
        `shared/references/003_b124c04605a6a89f.txt`). Its Table 1, taken from Baydin et al.'s survey,
        is the evaluation trace of

        y = f(x₁, x₂) = ln(x₁) + x₁·x₂ − sin(x₂)  at (x₁, x₂) = (2, 5),

        with the forward primal trace on the left and the reverse adjoint trace on the right. The
        report's values: **y = 11.652, ∂y/∂x₁ = 5.5, ∂y/∂x₂ = 1.716**, and on the way
        v₁ = ln 2 = 0.693, v₂ = 10, v₃ = sin 5 = −0.959, v₄ = 10.693, adjoints v̄₅ = v̄₄ = v̄₂ = v̄₁ = 1,
        v̄₃ = −1.
        """
    ),
    SETUP,
    md(
        """
        ## Table 1, as `tape` prints it

        One statement per entry, in the report's order, so that the rows are numbered as its table:
        the inputs are v₋₁ and v₀, the intermediates v₁ … v₅. After the backward pass the last column
        is the reverse adjoint trace (read bottom to top).
        """
    ),
    code(
        """
        x1 = tp.tensor(2.0, requires_grad=True)
        x2 = tp.tensor(5.0, requires_grad=True)
        with tp.record() as t:
            v1 = tp.log(x1)
            v2 = x1 * x2
            v3 = tp.sin(x2)
            v4 = v1 + v2
            y = v4 - v3
        y.backward()
        print(t)
        """
    ),
    md("Every value and adjoint the table prints, checked against the report's:"),
    code(
        """
        table_1 = {  # row: (value, adjoint), as Harrison's Table 1 prints them
            "v-1 = x1": ("2", "5.5"),
            "v0 = x2": ("5", "1.716"),
            "v1 = log(v-1)": ("0.693", "1"),
            "v2 = mul(v-1, v0)": ("10", "1"),
            "v3 = sin(v0)": ("-0.959", "-1"),
            "v4 = add(v1, v2)": ("10.693", "1"),
            "v5 = sub(v4, v3)": ("11.652", "1"),
        }
        printed = {}
        for line in str(t).splitlines()[2:]:  # the table print(t) shows, below its header
            entry, value, adjoint = (cell.strip() for cell in line.split("|"))
            printed[entry] = (value, adjoint)
        assert printed == table_1, printed

        assert round(y.item(), 3) == 11.652
        assert x1.grad.item() == 5.5
        assert round(x2.grad.item(), 3) == 1.716
        print(f"y = {y.item():.3f}, dy/dx1 = {x1.grad.item()}, dy/dx2 = {x2.grad.item():.3f}")
        """
    ),
    md(
        """
        The adjoints of the intermediates, asked of a tape recorded again with `persistent=True`
        (`t.gradient` returns gradients with respect to any recorded tensor, without touching `.grad`),
        and the two contributions that the reverse trace adds into v̄₀ and v̄₋₁:
        v̄₀ = v̄₃·cos(v₀) + v̄₂·v₋₁ = −0.284 + 2 and v̄₋₁ = v̄₂·v₀ + v̄₁/v₋₁ = 5 + 0.5.
        """
    ),
    code(
        """
        with tp.record(persistent=True) as t:
            v1 = tp.log(x1)
            v2 = x1 * x2
            v3 = tp.sin(x2)
            v4 = v1 + v2
            y = v4 - v3
        adjoints = t.gradient(y, [v1, v2, v3, v4])
        print("v1', v2', v3', v4' =", [a.item() for a in adjoints])
        assert [a.item() for a in adjoints] == [1.0, 1.0, -1.0, 1.0]

        via_v3, via_v2 = -1.0 * np.cos(5.0), 1.0 * 2.0
        print(f"x2' = {via_v3:.3f} + {via_v2:g} = {via_v3 + via_v2:.3f}")
        print(f"x1' = {1.0 * 5.0:g} + {1.0 / 2.0:g} = {1.0 * 5.0 + 1.0 / 2.0:g}")
        assert round(via_v3, 3) == -0.284 and np.isclose(via_v3 + via_v2, x2.grad.item())
        """
    ),
    md(
        """
        ## The Wengert list

        `t.entries` is what the tape stores: per entry an op, the slots of its inputs and the slot of
        its output (the report's footnote: the evaluation trace is "also known as a Wengert list").
        """
    ),
    code(
        """
        for entry in t.entries:
            inputs = ", ".join(f"v{i}" for i in entry.inputs)
            print(f"entry {entry.index}: v{entry.output} = {entry.op}({inputs})    {entry}")
        assert [e.op for e in t.entries] == ["log", "mul", "sin", "add", "sub"]
        """
    ),
    md(
        """
        ## The computation graph (the report's Figure 2)

        `t.to_dot()` returns Graphviz source. Where the `dot` program is installed it is rendered;
        otherwise the source is printed. Either way, the same graph is then drawn with matplotlib
        from that source, one column per depth.
        """
    ),
    code(
        """
        import re
        import shutil
        import subprocess

        from IPython.display import Image, display

        source = t.to_dot()
        if shutil.which("dot"):
            png = subprocess.run(["dot", "-Tpng"], input=source.encode(), capture_output=True, check=True).stdout
            display(Image(png))
        else:
            print("(no `dot` program here: the Graphviz source)")
            print(source)
        """
    ),
    code(
        """
        def draw_dot(source, ax):
            \"\"\"Draw Graphviz source from `to_dot()`: nodes in columns by depth, edges as arrows.\"\"\"
            labels = dict(re.findall(r'^\\s*(\\w+) \\[.*label="([^"]*)"', source, re.M))
            leaves = set(re.findall(r"^\\s*(\\w+) \\[shape=box", source, re.M))
            edges = re.findall(r"^\\s*(\\w+) -> (\\w+);", source, re.M)
            depth = {node: 0 for node in labels}
            for a, b in edges:  # entries are in order: one pass suffices
                depth[b] = max(depth[b], depth[a] + 1)
            columns = {}
            for node in labels:
                columns.setdefault(depth[node], []).append(node)
            where = {}
            for d, nodes in columns.items():
                for i, node in enumerate(nodes):
                    where[node] = (d, (len(nodes) - 1) / 2 - i)
            for a, b in edges:
                arrow = dict(arrowstyle="->", color="grey", shrinkA=28, shrinkB=28)
                ax.annotate("", xy=where[b], xytext=where[a], arrowprops=arrow)
            for node, (px, py) in where.items():
                box = "square" if node in leaves else "round"
                ax.text(
                    px,
                    py,
                    labels[node].replace("\\\\n", "\\n"),
                    ha="center",
                    va="center",
                    fontsize=9,
                    bbox=dict(boxstyle=f"{box},pad=0.4", fc="white", ec="steelblue"),
                )
            ax.set_xlim(-0.6, max(columns) + 0.6)
            ax.set_ylim(-1.5, 1.5)
            ax.axis("off")


        fig, ax = plt.subplots(figsize=(9, 3))
        draw_dot(source, ax)
        ax.set_title("y = ln(x1) + x1·x2 − sin(x2), from t.to_dot()")
        plt.show()
        """
    ),
    md(
        """
        ## Forward mode on the same function

        The report's other mode: derivatives computed alongside the values, one pass per input.
        `tp.jvp` with tangent (1, 0) gives ∂y/∂x₁, with (0, 1) gives ∂y/∂x₂.
        """
    ),
    code(
        """
        def f(x1, x2):
            return tp.log(x1) + x1 * x2 - tp.sin(x2)


        primals = (tp.tensor(2.0), tp.tensor(5.0))
        y_fwd, d1 = tp.jvp(f, primals, (tp.tensor(1.0), tp.tensor(0.0)))
        _, d2 = tp.jvp(f, primals, (tp.tensor(0.0), tp.tensor(1.0)))
        print(f"y = {y_fwd.item():.3f}, dy/dx1 = {d1.item():.3f}, dy/dx2 = {d2.item():.3f}")
        assert round(y_fwd.item(), 3) == 11.652 and d1.item() == 5.5 and round(d2.item(), 3) == 1.716
        """
    ),
    md(
        """
        ## The report's example programs, redone

        **Figure 1, the dataflow program** Z := A × B + C, W := Z + 4, Y := Z² − (3Z + B), here at
        A = 2, B = 3, C = 1. W is computed but Y does not depend on it: it is on the tape, and the
        backward pass from Y gives it no adjoint. By hand, with ∂Y/∂Z = 2Z − 3 = 11:
        ∂Y/∂A = 11·B = 33, ∂Y/∂B = 11·A − 1 = 21, ∂Y/∂C = 11.
        """
    ),
    code(
        """
        A = tp.tensor(2.0, requires_grad=True)
        B = tp.tensor(3.0, requires_grad=True)
        C = tp.tensor(1.0, requires_grad=True)
        with tp.record(persistent=True) as t:
            Z = A * B + C
            W = Z + 4
            Y = Z**2 - (3 * Z + B)
        dY_dW = t.gradient(Y, W)  # a persistent tape answers this and keeps its history
        Y.backward()  # which this backward pass then consumes
        print(t)
        print(
            f"Y = {Y.item():g}, W = {W.item():g}; dY/dA = {A.grad.item():g}, dY/dB = {B.grad.item():g}, "
            f"dY/dC = {C.grad.item():g}, dY/dW = {dY_dW.item():g}"
        )
        assert (Y.item(), W.item()) == (25.0, 11.0)
        assert (A.grad.item(), B.grad.item(), C.grad.item()) == (33.0, 21.0, 11.0)
        assert dY_dW.item() == 0.0
        """
    ),
    md(
        """
        **Figure 3, the PyTorch program of Equation 1** (operator overloading: the graph is built as
        the program runs). The same with `tape`'s functional transform, which records and sweeps a
        tape behind a plain Python function, HIPS-autograd style:
        """
    ),
    code(
        """
        y_val, (g1, g2) = tp.value_and_grad(f, argnums=(0, 1))(tp.tensor(2.0), tp.tensor(5.0))
        print(f"y = {y_val.item():.3f}, dy/dx1 = {g1.item():.3f}, dy/dx2 = {g2.item():.3f}")
        assert round(y_val.item(), 3) == 11.652 and g1.item() == 5.5 and round(g2.item(), 3) == 1.716
        """
    ),
    md(
        """
        **Figure 4, the TensorFlow program** (source transformation: a graph built once, then run on
        new inputs). `tape` is an operator-overloading tool, so the graph follows whatever the Python
        code does, branches and loops included: below, the function takes a different branch for
        x₁ < 1, and each call records the path it took. (Recording a program once and replaying it,
        the other side of the report's comparison, is `tape`'s compiled programs, API §9, notebook 08
        once they land.)
        """
    ),
    code(
        """
        def g(x1, x2):
            if x1 < 1:  # a branch on a value: fine in operator overloading
                return x1 * x2
            return tp.log(x1) + x1 * x2 - tp.sin(x2)


        for a in (0.5, 2.0):
            x1 = tp.tensor(a, requires_grad=True)
            x2 = tp.tensor(5.0, requires_grad=True)
            with tp.record() as t:
                out = g(x1, x2)
            out.backward()
            print(f"x1 = {a}: ops recorded {[e.op for e in t.entries]}, dy/dx1 = {x1.grad.item():.3f}")
        """
    ),
]
FIGURES["05_evaluation_trace"] = 1

# ------------------------------------------------------------------------------------------------
# 06: checkpointing a 10,000-step simulation (API §5; the slides' aside on Griewank 1992).

NOTEBOOKS["06_checkpointing"] = [
    md(
        """
        # 06 · Checkpointing a long simulation

        **Follows:** the aside at the end of reference 002 (the Southampton slides): reverse mode can
        "trade off computation for memory", after Griewank (1992), *Achieving logarithmic growth of
        temporal and spatial complexity in reverse automatic differentiation*; and `tape`'s API §5.

        Reverse mode through n time steps keeps every step's history until the backward pass: memory
        grows with n. `tp.checkpoint_loop(step, state, n, snapshots=s)` records the whole loop as one
        entry that stores at most s states (the initial one included) and re-runs steps from them
        during the backward pass, on Griewank and Walther's binomial schedule (Revolve). The number of
        re-run steps is the Revolve optimum

        p(n, s) = t·n − C(s + t, t − 1),  t the smallest integer with C(s + t, s) ≥ n,

        so `step` runs exactly n + p(n, s) times in all (`tape.checkpointing.revolve_extra_steps`).

        **The simulation:** the 1-D heat equation ∂u/∂t = κ ∂²u/∂x² on [0, 1], u = 0 at both ends,
        128 interior points, explicit Euler steps u ← A u with A = I + κ Δt L (L the second-difference
        matrix), written u ← u + κ (Δt L) u, for **10,000 steps**. The loss is J = Σᵢ wᵢ uᵢ(T) Δx
        with w = sin(πx), the amplitude of the slowest mode at the end. We want ∂J/∂u₀ (the whole
        initial profile) and ∂J/∂κ. Because the problem is linear there are closed forms to check
        against, with A = I + κΔtL:
        ∂J/∂u₀ = (Aᵀ)ⁿ w Δx and, as A and L commute, ∂J/∂κ = n Δt · wᵀ L Aⁿ⁻¹ u₀ Δx.
        """
    ),
    SETUP,
    code(
        """
        import gc
        import time
        import tracemalloc

        from tape.checkpointing import revolve_extra_steps

        N = 128
        dx = 1.0 / (N + 1)
        x = dx * np.arange(1, N + 1)
        L = (np.diag(-2.0 * np.ones(N)) + np.diag(np.ones(N - 1), 1) + np.diag(np.ones(N - 1), -1)) / dx**2
        dt = 0.4 * dx**2  # stable for κ·Δt/Δx² ≤ 1/2
        n_steps = 10_000
        w = tp.tensor(np.sin(np.pi * x) * dx)
        dtL = tp.tensor(dt * L)  # a constant: no gradient wanted for the matrix itself

        u0 = tp.tensor(np.exp(-100 * (x - 0.3) ** 2) + 0.5 * np.exp(-300 * (x - 0.75) ** 2), requires_grad=True)
        kappa = tp.tensor(1.0, requires_grad=True)


        def loss_and_grads(run_loop, n=n_steps):
            \"\"\"Record `run_loop(step, u0, n)` and J, run the backward pass: J, dJ/du0, dJ/dkappa, seconds.\"\"\"
            u0.zero_grad()
            kappa.zero_grad()
            start = time.perf_counter()
            with tp.record():
                J = tp.sum(w * run_loop(step, u0, n))
            J.backward()
            return J.item(), u0.grad.numpy(), kappa.grad.item(), time.perf_counter() - start


        def step(u):
            return u + kappa * (dtL @ u)


        def plain_loop(step, u, n):
            for _ in range(n):
                u = step(u)
            return u
        """
    ),
    md("## The plain loop and the checkpointed loop, 10,000 steps"),
    code(
        """
        J_plain, du0_plain, dkappa_plain, t_plain = loss_and_grads(plain_loop)

        stats = tp.CheckpointStats()
        J_ckpt, du0_ckpt, dkappa_ckpt, t_ckpt = loss_and_grads(
            lambda step, u, n: tp.checkpoint_loop(step, u, n, stats=stats)  # snapshots=None: the default
        )
        print(stats)
        print()
        print(f"plain loop:        J = {J_plain:.12f}, dJ/dkappa = {dkappa_plain:.12f}, {t_plain:.2f} s")
        print(f"checkpoint_loop:   J = {J_ckpt:.12f}, dJ/dkappa = {dkappa_ckpt:.12f}, {t_ckpt:.2f} s")
        print(f"largest difference in dJ/du0: {np.max(np.abs(du0_ckpt - du0_plain)):.1e}")

        np.testing.assert_allclose(du0_ckpt, du0_plain, rtol=1e-12, atol=0)
        np.testing.assert_allclose(dkappa_ckpt, dkappa_plain, rtol=1e-12)
        assert J_ckpt == J_plain
        s = stats.peak_snapshots
        assert stats.forward_steps == n_steps
        assert stats.rerun_steps == revolve_extra_steps(n_steps, s)
        print(
            f"step calls: {stats.step_calls:,} = n + p(n, s) = {n_steps:,} + {revolve_extra_steps(n_steps, s):,}"
            f" with s = {s} snapshots"
        )
        """
    ),
    md("Both agree with the closed forms:"),
    code(
        """
        A_np = np.eye(N) + dt * L
        w_np = w.numpy()
        du0_exact = np.linalg.matrix_power(A_np.T, n_steps) @ w_np
        dkappa_exact = n_steps * dt * w_np @ L @ np.linalg.matrix_power(A_np, n_steps - 1) @ u0.numpy()
        print(f"dJ/dkappa: tape {dkappa_ckpt:.12f}, closed form {dkappa_exact:.12f}")
        np.testing.assert_allclose(du0_ckpt, du0_exact, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(dkappa_ckpt, dkappa_exact, rtol=1e-9)
        """
    ),
    code(
        """
        history = [u0.numpy()]
        u = u0.numpy()
        A_np = np.eye(N) + dt * L
        for k in range(1, n_steps + 1):
            u = A_np @ u
            if k % 100 == 0:
                history.append(u)

        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
        extent = [0, n_steps * dt, 0, 1]
        image = ax1.imshow(np.array(history).T, aspect="auto", origin="lower", cmap="inferno", extent=extent)
        fig.colorbar(image, ax=ax1, label="u")
        ax1.set_xlabel("t")
        ax1.set_ylabel("x")
        ax1.set_title(f"u(x, t) over {n_steps:,} steps")
        ax2.plot(x, du0_ckpt, label="∂J/∂u₀ from tp.checkpoint_loop")
        ax2.plot(x, du0_exact, "k:", lw=2, label="(Aᵀ)ⁿ w Δx")
        ax2.set_xlabel("x")
        ax2.legend()
        ax2.set_title("The gradient with respect to the initial profile")
        plt.show()
        """
    ),
    md(
        """
        ## Re-runs and memory against the number of snapshots

        For n = 500 steps and s from 4 to 128 snapshots: the re-run steps counted by
        `CheckpointStats` next to the Revolve formula, and the peak memory of the forward and backward
        pass together, measured by `tracemalloc` beyond what was held before the loop (the plain loop's
        for comparison). Fewer snapshots, more re-runs; more snapshots, more memory: each snapshot is
        one 1 KiB state, while the plain loop keeps every step's history, so its peak grows with n.
        """
    ),
    code(
        """
        def peak_bytes(run_loop, n):
            \"\"\"Peak traced bytes of recording the loop and its backward pass, beyond what was held before.\"\"\"
            u0.zero_grad()
            kappa.zero_grad()
            with tp.record():
                gc.collect()
                tracemalloc.start()
                base = tracemalloc.get_traced_memory()[0]
                J = tp.sum(w * run_loop(step, u0, n))
            J.backward()
            peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
            return peak, u0.grad.numpy()


        n_small = 500
        plain_peak, du0_small = peak_bytes(plain_loop, n_small)
        snapshot_counts = [4, 8, 16, 32, 64, 128]
        reruns, formula, peaks = [], [], []
        for s in snapshot_counts:
            st = tp.CheckpointStats()
            run = lambda step, u, n, s=s, st=st: tp.checkpoint_loop(step, u, n, snapshots=s, stats=st)
            peak, g = peak_bytes(run, n_small)
            np.testing.assert_allclose(g, du0_small, rtol=1e-12, atol=0)
            assert st.rerun_steps == revolve_extra_steps(n_small, s) and st.peak_snapshots <= s
            reruns.append(st.rerun_steps)
            formula.append(revolve_extra_steps(n_small, s))
            peaks.append(peak)
        per_step = plain_peak / n_small / 1024
        print(f"plain loop, {n_small:,} steps: peak {plain_peak / 2**20:.2f} MiB ({per_step:.1f} KiB per step)")
        print(f"{'snapshots':>9} {'re-runs':>8} {'p(n, s)':>8} {'peak KiB':>9}")
        for s, r, p, m in zip(snapshot_counts, reruns, formula, peaks):
            print(f"{s:>9} {r:>8,} {p:>8,} {m / 1024:>9.0f}")
        assert max(peaks) < plain_peak / 4
        """
    ),
    code(
        """
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 3.8))
        ax1.plot(snapshot_counts, reruns, "o", ms=9, label="measured (CheckpointStats.rerun_steps)")
        ax1.plot(snapshot_counts, formula, "k.-", label="Revolve: p(n, s) = t·n − C(s+t, t−1)")
        ax1.axhline(n_small, color="grey", ls=":", label="n (the forward pass)")
        ax1.set_xscale("log", base=2)
        ax1.set_xlabel("snapshots s")
        ax1.set_ylabel("steps re-run in the backward pass")
        ax1.legend()
        ax1.set_title(f"Re-runs, n = {n_small:,} steps")
        ax2.plot(snapshot_counts, [p / 1024 for p in peaks], "o-", label="tp.checkpoint_loop")
        ax2.axhline(plain_peak / 1024, color="C3", ls="--", label="plain loop")
        ax2.set_xscale("log", base=2)
        ax2.set_yscale("log")
        ax2.set_xlabel("snapshots s")
        ax2.set_ylabel("peak KiB (tracemalloc)")
        ax2.legend()
        ax2.set_title("Peak memory of the forward and backward pass")
        plt.show()
        """
    ),
    md(
        """
        ## Disk mode

        `disk_snapshots=` adds snapshots kept in files (a temporary directory, removed afterwards);
        `checkpoint_schedules`' multistage schedule spreads them with the ones in memory, and the
        re-runs are those of s = snapshots + disk_snapshots. Here 2 in memory and 6 on disk, for the
        500-step loop of the previous section:
        """
    ),
    code(
        """
        _, du0_small, dkappa_small, _ = loss_and_grads(plain_loop, n=n_small)
        stats_disk = tp.CheckpointStats()
        _, du0_disk, dkappa_disk, _ = loss_and_grads(
            lambda step, u, n: tp.checkpoint_loop(step, u, n, snapshots=2, disk_snapshots=6, stats=stats_disk),
            n=n_small,
        )
        print(stats_disk)
        np.testing.assert_allclose(du0_disk, du0_small, rtol=1e-12, atol=0)
        np.testing.assert_allclose(dkappa_disk, dkappa_small, rtol=1e-12)
        assert stats_disk.rerun_steps == revolve_extra_steps(n_small, 2 + 6)
        assert stats_disk.peak_disk_bytes > 0
        print(f"\\nre-runs {stats_disk.rerun_steps:,} = p({n_small:,}, 8); gradients equal to the plain loop's")
        """
    ),
    md(
        """
        ## Online mode: a loop whose length is not known in advance

        `tp.checkpoint_while(cond, step, state, period=...)` is `while cond(state): state = step(state)`,
        differentiable: a snapshot every `period` steps while it runs, then a binomial schedule inside
        each period on the way back. Here: cool until the peak temperature falls below 0.25 (about
        1,500 steps, a number the code does not know in advance), with a snapshot every 200 steps.
        """
    ),
    code(
        """
        def cooling(u):
            return tp.max(u) > 0.25


        def plain_while(step, u, n=None):
            steps = 0
            while cooling(u):
                u = step(u)
                steps += 1
            plain_while.steps = steps
            return u


        J_w, du0_w, dkappa_w, _ = loss_and_grads(plain_while)
        stats_online = tp.CheckpointStats()
        J_o, du0_o, dkappa_o, _ = loss_and_grads(
            lambda step, u, n: tp.checkpoint_while(cooling, step, u, period=200, stats=stats_online)
        )
        print(stats_online)
        print(f"\\nthe plain while loop ran {plain_while.steps:,} steps; checkpoint_while {stats_online.n_steps:,}")
        assert stats_online.n_steps == plain_while.steps
        assert J_o == J_w
        np.testing.assert_allclose(du0_o, du0_w, rtol=1e-12, atol=0)
        np.testing.assert_allclose(dkappa_o, dkappa_w, rtol=1e-12)
        print("gradients equal to the plain while loop's")
        """
    ),
]
FIGURES["06_checkpointing"] = 2

# ------------------------------------------------------------------------------------------------
# 07: the benchmarks, as plots: a quick run in the notebook, and the saved results table.

NOTEBOOKS["07_benchmarks"] = [
    md(
        """
        # 07 · Benchmarks as plots

        **Follows:** `benchmarks/` in this repository: `chain_overhead.py` (the per-op overhead of a
        long chain) and the workloads of `run.py` (W3, large arrays). The comparison with PyTorch,
        HIPS autograd and JAX needs the `bench` extra and about six minutes (`make bench`); this
        notebook needs only `tape` and NumPy, so it does two things:

        1. a **quick measurement on this machine**: per-op overhead of a chain of 0-d and
           100-element ops, a large-array workload against hand-written NumPy, and peak memory with
           `tracemalloc`;
        2. the **saved table** of the last full run, `benchmarks/results/results.md`, parsed and
           plotted (skipped if the file is absent).

        Times are medians of a few runs on a shared machine: read ratios within one run, not
        absolute numbers, and expect them to move between runs.
        """
    ),
    SETUP,
    code(
        """
        import gc
        import platform
        import statistics
        import time
        import tracemalloc


        def median_seconds(fn, repeats):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return statistics.median(times)


        print(
            platform.processor() or platform.machine(),
            "|",
            platform.python_version(),
            "| NumPy",
            np.__version__,
            "| tape",
            tp.__version__,
        )
        """
    ),
    md(
        """
        ## Per-op overhead of a long chain

        The chain of `benchmarks/chain_overhead.py`: `y = y * 0.9; y = y + x; y = sin(y); y = y * 0.5`,
        repeated, from a leaf x. With values this small the arithmetic is nearly free, so the time per
        op is the engine's bookkeeping: recording an entry, and sweeping it backwards. The floor is
        the same chain in plain NumPy, forward only. Before timing, tape's gradient is checked against
        central finite differences.
        """
    ),
    code(
        """
        N_OPS, REPEATS = 2_000, 5


        def chain(x, n_ops, sin):
            y = x
            for k in range(n_ops):
                phase = k % 4
                if phase == 0:
                    y = y * 0.9
                elif phase == 1:
                    y = y + x
                elif phase == 2:
                    y = sin(y)
                else:
                    y = y * 0.5
            return y


        def tape_record(start):
            x = tp.tensor(start, requires_grad=True)
            with tp.record():
                y = tp.sum(chain(x, N_OPS, tp.sin))
            return x, y


        rng = np.random.default_rng(0)
        starts = {"0-d": np.array(0.3), "100 float64": rng.uniform(-1, 1, 100)}

        for label, start in starts.items():  # the gradient first: tape against finite differences
            x, y = tape_record(start)
            y.backward()
            eps = 1e-6
            probe = np.zeros_like(start)
            probe.flat[0] = eps
            plus, minus = np.sum(chain(start + probe, N_OPS, np.sin)), np.sum(chain(start - probe, N_OPS, np.sin))
            numeric = (plus - minus) / (2 * eps)
            assert np.isclose(x.grad.numpy().flat[0], numeric, rtol=1e-6), label

        overhead = {}
        for label, start in starts.items():
            record = median_seconds(lambda start=start: tape_record(start), REPEATS)
            total = median_seconds(lambda start=start: tape_record(start)[1].backward(), REPEATS)
            floor = median_seconds(lambda start=start: chain(start, N_OPS, np.sin), REPEATS)
            ops = N_OPS + 1
            overhead[label] = {
                "record": 1e6 * record / ops,
                "backward": 1e6 * (total - record) / ops,
                "numpy": 1e6 * floor / ops,
            }
            row = overhead[label]
            print(
                f"{label:>12}: tape {row['record'] + row['backward']:5.2f} µs/op "
                f"(record {row['record']:.2f} + backward {row['backward']:.2f}), "
                f"NumPy forward only {row['numpy']:.2f} µs/op"
            )
        """
    ),
    code(
        """
        labels = list(overhead)
        xs = np.arange(len(labels))
        fig, ax = plt.subplots(figsize=(7, 3.5))
        rec = [overhead[k]["record"] for k in labels]
        bwd = [overhead[k]["backward"] for k in labels]
        ax.bar(xs - 0.2, rec, 0.4, label="tape: recording")
        ax.bar(xs - 0.2, bwd, 0.4, bottom=rec, label="tape: backward sweep")
        ax.bar(xs + 0.2, [overhead[k]["numpy"] for k in labels], 0.4, label="NumPy, forward only (no AD)")
        ax.set_xticks(xs, [f"{k} values" for k in labels])
        ax.set_ylabel("µs per op (median)")
        ax.set_title(f"Per-op overhead, a chain of {N_OPS:,} ops")
        ax.legend()
        plt.show()
        """
    ),
    md(
        """
        ## Large arrays: time and memory

        W3 of the harness: f(x) = Σ tanh(a·x + b) · exp(−x²) over 2²⁰ float64 values (8 MiB), with its
        gradient with respect to x, a and b. The reference is the same function with its gradient
        written out by hand in NumPy; tape's gradient must match it before anything is timed. Here the
        arithmetic dominates, and the question is how close tape gets to the hand-written code, and
        how much memory each needs at its peak (`tracemalloc`, which sees every NumPy array). The
        saved run below used 2²² values; the ratio moves with the size and with the machine's load.
        """
    ),
    code(
        """
        n = 2**20
        x_np = rng.standard_normal(n)
        a_np, b_np = 0.7, -0.2


        def numpy_value_and_grad(x, a, b):
            u = a * x + b
            t = np.tanh(u)
            e = np.exp(-x * x)
            value = np.sum(t * e)
            dt = e * (1 - t * t)  # d/du of tanh(u), times e
            gx = a * dt - 2 * x * t * e
            return value, gx, np.sum(dt * x), np.sum(dt)


        def tape_value_and_grad(x, a, b):
            x, a, b = (tp.tensor(v, requires_grad=True) for v in (x, a, b))
            with tp.record():
                value = tp.sum(tp.tanh(a * x + b) * tp.exp(-(x * x)))
            value.backward()
            return value.item(), x.grad.numpy(), a.grad.item(), b.grad.item()


        ref = numpy_value_and_grad(x_np, a_np, b_np)
        got = tape_value_and_grad(x_np, a_np, b_np)
        assert np.isclose(got[0], ref[0], rtol=1e-12)
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-10, atol=1e-14)
        assert np.allclose(got[2:], ref[2:], rtol=1e-10)


        def peak_mib(fn):
            gc.collect()
            tracemalloc.start()
            fn()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            return peak / 2**20


        large = {}
        for name, fn in [("tape", tape_value_and_grad), ("NumPy, hand-written", numpy_value_and_grad)]:
            run = lambda fn=fn: fn(x_np, a_np, b_np)
            large[name] = (1e3 * median_seconds(run, 5), peak_mib(run))
        for name, (ms, mib) in large.items():
            print(f"{name:>20}: {ms:6.1f} ms, peak {mib:6.2f} MiB")
        print(f"tape / hand-written: {large['tape'][0] / large['NumPy, hand-written'][0]:.2f}× the time")
        """
    ),
    code(
        """
        names = list(large)
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
        ax1.bar(names, [large[k][0] for k in names], color=["C0", "C2"])
        ax1.set_ylabel("ms per value and gradient (median of 5)")
        ax2.bar(names, [large[k][1] for k in names], color=["C0", "C2"])
        ax2.axhline(x_np.nbytes / 2**20, color="grey", ls=":", label="one array of x's size")
        ax2.set_ylabel("peak MiB (tracemalloc)")
        ax2.legend()
        fig.suptitle(f"Large arrays: Σ tanh(a·x + b)·exp(−x²), n = {n:,}")
        plt.show()
        """
    ),
    md(
        """
        ## The last full comparison: `benchmarks/results/results.md`

        `make bench` writes this table: six workloads on tape, PyTorch, HIPS autograd, JAX and
        hand-written NumPy, each checked against the NumPy reference before it is timed. Parsed here
        from its Markdown: the summary (each engine's median as a ratio to PyTorch's) and W5's peak
        memory with and without checkpointing (the first figure of each cell: `tracemalloc`'s peak
        for the engines whose arrays are NumPy arrays, resident-memory growth for PyTorch and JAX;
        `results.md` explains the difference). These are the numbers of that run, on that machine.
        """
    ),
    code(
        """
        import re
        from pathlib import Path

        results = Path("..") / "benchmarks" / "results" / "results.md"


        def markdown_table(text, heading):
            \"\"\"The rows (lists of cells) of the first table after a `## heading` line.\"\"\"
            lines = text[text.index(heading) :].splitlines()[1:]
            start = next(i for i, line in enumerate(lines) if line.startswith("|"))
            rows = []
            for line in lines[start:]:
                if not line.startswith("|"):
                    break
                rows.append([cell.strip() for cell in line.strip("|").split("|")])
            return rows[0], rows[2:]  # header, body (without the |---| line)


        def first_number(cell):
            found = re.search(r"[\\d,]*\\.?\\d+", cell)
            return float(found.group().replace(",", "")) if found else None


        if results.exists():
            text = results.read_text()
            print(text.splitlines()[2])  # the command and the commit
            header, body = markdown_table(text, "## Summary")
            engines = header[1:]
            ratios = {}
            for row in body:
                cells = dict(zip(engines, row[1:]))
                found = {e: re.search(r"\\(([\\d.]+)×\\)", c) for e, c in cells.items()}
                if all(found.values()):
                    ratios[row[0]] = {e: float(m.group(1)) for e, m in found.items()}
            mem_header, mem_body = markdown_table(text, "## W5")
            w5_memory = {row[0]: (first_number(row[2]), first_number(row[4])) for row in mem_body}
            for workload, by_engine in ratios.items():
                print(f"{workload:<40}", "  ".join(f"{e} {r:g}×" for e, r in by_engine.items()))
            assert ratios and all(r["PyTorch"] == 1.0 for r in ratios.values())
        else:
            print(f"{results} is absent: run `make bench` to produce it")
        """
    ),
    code(
        """
        if results.exists():
            fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [2, 1]})
            workloads = list(ratios)
            width = 0.8 / len(engines)
            for i, engine in enumerate(engines):
                ax1.bar(
                    np.arange(len(workloads)) + (i - (len(engines) - 1) / 2) * width,
                    [ratios[w][engine] for w in workloads],
                    width,
                    label=engine,
                )
            ax1.set_yscale("log")
            ax1.axhline(1.0, color="black", lw=0.8)
            ax1.set_xticks(np.arange(len(workloads)), [w.split(" (")[0] for w in workloads], rotation=30, ha="right")
            ax1.set_ylabel("median time / PyTorch's (log)")
            ax1.legend(fontsize=8, ncol=2)
            ax1.set_title("Saved run: every workload, ratio to PyTorch")
            names = list(w5_memory)
            ys = np.arange(len(names))
            ax2.barh(ys - 0.2, [w5_memory[k][0] for k in names], 0.4, label="W5, plain")
            ax2.barh(ys + 0.2, [w5_memory[k][1] for k in names], 0.4, label="W5, checkpointed")
            ax2.set_yticks(ys, names)
            ax2.invert_yaxis()
            ax2.set_xlabel("peak MiB (first figure of each cell)")
            ax2.legend(fontsize=8)
            ax2.set_title("Saved run: W5 memory")
            plt.tight_layout()
            plt.show()
        """
    ),
]
FIGURES["07_benchmarks"] = 3

# ------------------------------------------------------------------------------------------------
# 08: compiled programs (API §9): record once, replay; guards; statistics; files; speed.

NOTEBOOKS["08_compiled_programs"] = [
    md(
        """
        # 08 · Compiled programs: record once, replay

        **Follows:** `tape`'s own compiled programs (API §9, the README's "Compiled programs"), on the
        function of Baydin et al.'s Table 1 from reference 003 (Harrison, 2019, notebook 05):
        f(x₁, x₂) = ln(x₁) + x₁·x₂ − sin(x₂) at (2, 5), with y = 11.652, ∂y/∂x₁ = 5.5,
        ∂y/∂x₂ = 1.716.

        The report contrasts two ways of building AD. In *operator overloading* "the adjoint program
        is dynamically constructed upon execution of the primal program", at every execution; in
        *source transformation* "the framework interprets the program with different inputs while
        keeping the computation graph fixed". `tape` records by operator overloading, and
        `tp.compile` takes the second road from there: it records a function once per signature
        (shapes and dtypes of its array arguments), lowers the tape to a `tp.Program` (flat integer
        columns: opcode, input slots, output slot, plus parameters and constants) and replays that
        program on later calls without running the function's Python. This notebook shows the
        replay, the guards that keep Python control flow honest, what a program says about itself,
        saving one to a file, and the speed against eager recording, measured here.
        """
    ),
    SETUP,
    code(
        """
        import os
        import platform
        import statistics
        import subprocess
        import sys
        import tempfile
        import time


        def median_ms(fn, *args, repeats=7):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn(*args)
                times.append(time.perf_counter() - start)
            return 1e3 * statistics.median(times)


        def close(a, b):
            # compiled against eager: equal to rounding (API §9: 1e-12 relative in float64)
            return np.allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=1e-12, atol=0)


        print(platform.processor() or platform.machine(), "|", platform.python_version(), "| tape", tp.__version__)
        """
    ),
    md(
        """
        ## Record once, replay

        `tp.compile(f)` returns a callable with `f`'s arguments and results. Its first call with a
        given signature runs `f` under recording and lowers what was recorded; every later call with
        that signature replays the program. A counter inside `f` shows when its Python runs.
        """
    ),
    code(
        """
        python_runs = 0


        def f(x1, x2):
            global python_runs
            python_runs += 1
            return tp.log(x1) + x1 * x2 - tp.sin(x2)


        cf = tp.compile(f)
        y = cf(tp.tensor(2.0), tp.tensor(5.0))  # recorded: f's Python runs
        print(y, "| f ran", python_runs, "time")
        for a, b in [(2.0, 5.0), (1.0, 1.0), (3.0, 0.5)]:  # same signature (two 0-d float64): replays
            y = cf(tp.tensor(a), tp.tensor(b))
            assert close(y.item(), np.log(a) + a * b - np.sin(b))
        print(y, "| f ran", python_runs, "time")
        print(cf.stats())
        assert python_runs == 1
        assert cf.stats() == {
            "calls": 4,
            "replays": 3,
            "recordings": 1,
            "guard_failures": 0,
            "eager_calls": 0,
            "programs": 1,
        }
        """
    ),
    md(
        """
        Gradients go through the program's reverse sweep: under `tp.grad`, `tp.value_and_grad` or a
        `record()` block the compiled call is **one entry** on the caller's tape, `compiled:f`, whose
        rule is that sweep. Table 1's values, again without running `f`:
        """
    ),
    code(
        """
        x1 = tp.tensor(2.0, requires_grad=True)
        x2 = tp.tensor(5.0, requires_grad=True)
        with tp.record() as t:
            y = cf(x1, x2)
            z = 2 * y
        z.backward()
        print(t)
        print(f"y = {y.item():.3f}, dy/dx1 = {x1.grad.item() / 2:.3f}, dy/dx2 = {x2.grad.item() / 2:.3f}")
        assert [e.op for e in t.entries] == ["compiled:f", "mul"]
        assert round(y.item(), 3) == 11.652 and round(x1.grad.item() / 2, 3) == 5.5
        assert round(x2.grad.item() / 2, 3) == 1.716
        assert close(x1.grad.item(), 2 * (1 / 2 + 5)) and close(x2.grad.item(), 2 * (2 - np.cos(5)))  # closed forms
        assert python_runs == 1
        """
    ),
    md(
        """
        ## The program: a Wengert list

        `cf.program(*args)` gives the `tp.Program` for those arguments' signature. It prints as the
        Wengert list of the slides in notebook 04: the inputs are `v-1` and `v0`, entry k writes
        `v{k+1}`, and constants appear by value. `p.entries` is the same list as a `Tape`'s.
        """
    ),
    code(
        """
        p = cf.program(tp.tensor(2.0), tp.tensor(5.0))
        print(repr(p))
        print(p)
        assert [e.op for e in p.entries] == ["log", "mul", "add", "sin", "sub"]
        assert str(p).splitlines()[0] == "v1 = log(v-1)"
        """
    ),
    md(
        """
        `p.stats()` is computed from the columns before anything runs (ADOL-C's `tapestats`):
        `entries`; `slots` (inputs, constants and one per entry); `buffers`, the value buffers left
        after liveness analysis lets later values reuse dead ones; `bytes_forward` and
        `bytes_reverse`, the peak bytes of values and adjoints each pass holds; `saved_bytes` (values
        kept for the reverse pass, inputs not counted); an estimate of the `flops`; `kernel`, the
        Numba kernel that runs it (`None`: a Python loop over the op table's rules);
        `fallback_ops`, the ops that replay through those Python rules because they have no kernel;
        and `numpy_ops`, those that have one but run in NumPy by choice (big arrays, where NumPy's
        SIMD loops are faster, and runs too short to be worth a kernel call).
        """
    ),
    code(
        """
        for key, value in p.stats().items():
            print(f"{key:>16}: {value}")
        assert p.stats()["entries"] == len(p) == 5
        """
    ),
    md(
        """
        Five entries are fewer than a kernel call is worth (its fixed cost is tens of µs), so this
        program replays in Python. Repeat the expression, as the benchmarks' workload W1 does, and it
        runs in the scalar kernel. The 200 copies record 1,200 entries, but they all compute the same
        term: the lowering keeps the first copy of each repeated entry (common-subexpression
        elimination), which leaves 5 entries for the term and 200 for the running sum. They need a
        handful of buffers: a value dies as soon as the running sum has taken it.
        """
    ),
    code(
        """
        def chain(x1, x2, terms):
            total = 0.0
            for _ in range(terms):
                total = total + (tp.log(x1) + x1 * x2 - tp.sin(x2))
            return total


        cchain = tp.compile(chain, static_argnums=2)  # `terms` is part of the signature
        x1, x2 = tp.tensor(2.0), tp.tensor(5.0)
        p200 = cchain.program(x1, x2, 200)
        print("\\n".join(str(p200).splitlines()[:8]), "\\n...")
        stats = p200.stats()
        print({k: stats[k] for k in ("entries", "slots", "buffers", "bytes_forward", "kernel", "fallback_ops")})
        assert stats["entries"] == 5 + 200 and stats["kernel"] == "scalar" and stats["fallback_ops"] == {}
        assert stats["buffers"] <= 10 and stats["bytes_forward"] <= 8 * stats["buffers"]
        """
    ),
    md("Compiled against eager, value and both partial derivatives, in float64: equal to 1e-12."),
    code(
        """
        eager_vg = tp.value_and_grad(chain, argnums=(0, 1))
        compiled_vg = tp.value_and_grad(cchain, argnums=(0, 1))
        for a, b in [(2.0, 5.0), (0.5, -1.0), (7.0, 3.0)]:
            ve, (g1e, g2e) = eager_vg(tp.tensor(a), tp.tensor(b), 200)
            vc, (g1c, g2c) = compiled_vg(tp.tensor(a), tp.tensor(b), 200)
            print(f"x = ({a}, {b}):")
            print(f"  eager     y = {ve.item():<16.12g} dy/dx1 = {g1e.item():<16.12g} dy/dx2 = {g2e.item():.12g}")
            print(f"  compiled  y = {vc.item():<16.12g} dy/dx1 = {g1c.item():<16.12g} dy/dx2 = {g2c.item():.12g}")
            assert close(vc, ve) and close(g1c, g1e) and close(g2c, g2e)
            assert close(g1c, 200 * (1 / a + b)) and close(g2c, 200 * (a - np.cos(b)))
        print(cchain.stats())
        assert cchain.stats()["recordings"] == 1
        """
    ),
    md(
        """
        ## Guards: Python control flow

        A program is one path through `f`. When `f` turns a recorded value into a Python `bool`,
        `int` or `float` (`if x > 0:`), the recording notes a **guard** with the outcome it saw, and
        each replay checks it. Inputs that take the other branch fail the guard: that call records a
        second program for the new path, cached beside the first. A replay never returns the result
        of a path the inputs would not take.
        """
    ),
    code(
        """
        branch_runs = 0


        def g(x):
            global branch_runs
            branch_runs += 1
            if x > 0:
                return x * tp.sin(x)
            return tp.exp(x) - 1


        cg = tp.compile(g)
        programs = []  # each path's program, taken just after it is recorded (see below)
        for v in [1.0, 2.0, -1.0, -2.0, 3.0]:
            out = cg(tp.tensor(v))
            expected = v * np.sin(v) if v > 0 else np.expm1(v)
            print(f"g({v:+.1f}) = {out.item():+.6f}   Python runs so far: {branch_runs}   {cg.stats()}")
            assert close(out.item(), expected)
            if cg.stats()["recordings"] > len(programs):
                programs.append(cg.program(tp.tensor(v)))
        assert branch_runs == 2  # one recording per branch; the other three calls were replays
        assert cg.stats() == {
            "calls": 5,
            "replays": 3,
            "recordings": 2,
            "guard_failures": 1,
            "eager_calls": 0,
            "programs": 2,
        }
        """
    ),
    md(
        """
        Each path's program, with its guard: the comparison is an entry, and the guard checks its
        value. (`cg.program(x)` runs nothing, so it cannot check guards: it looks up the signature
        and gives the program recorded last for it. That is why the loop above took each one just
        after its recording.)
        """
    ),
    code(
        """
        p_pos, p_neg = programs
        print(p_pos, end="\\n\\n")
        print(p_neg)
        assert "guard bool(v1) == True" in str(p_pos) and "sin" in str(p_pos)
        assert "guard bool(v1) == False" in str(p_neg) and "exp" in str(p_neg)
        """
    ),
    md(
        """
        `max_programs` (8 by default) bounds the paths kept per signature; past it, calls that take
        a new path run `f` eagerly (`eager_calls`), still correct.
        """
    ),
    code(
        """
        cg1 = tp.compile(g, max_programs=1)
        for v in [1.0, -1.0, -2.0, 2.0]:
            assert close(cg1(tp.tensor(v)).item(), v * np.sin(v) if v > 0 else np.expm1(v))
        print(cg1.stats())
        assert cg1.stats()["eager_calls"] == 2 and cg1.stats()["replays"] == 1 and cg1.stats()["programs"] == 1
        """
    ),
    md(
        """
        ## Freezing a `record()` block: `Tape.compile`

        A block already recorded can be frozen without a function: `t.compile(inputs=..., outputs=...)`.
        The program is valid for the path that was recorded (it cannot re-record). It takes and
        returns NumPy arrays: `p(*arrays)` replays the forward pass, `p.vjp(*arrays)` gives the
        outputs and a function of the cotangents, `p.value_and_grad(*arrays)` serves a scalar output.
        Here Table 1's statements, in the report's order:
        """
    ),
    code(
        """
        a = tp.tensor(2.0, requires_grad=True)
        b = tp.tensor(5.0, requires_grad=True)
        with tp.record() as t:
            v1 = tp.log(a)
            v2 = a * b
            v3 = tp.sin(b)
            v4 = v1 + v2
            v5 = v4 - v3
        table1 = t.compile(inputs=[a, b], outputs=v5)
        print(table1, end="\\n\\n")
        value, (da, db) = table1.value_and_grad(np.array(2.0), np.array(5.0))
        out, vjp_fn = table1.vjp(np.array(2.0), np.array(5.0))
        print(f"y = {value:.3f}, dy/dx1 = {da:.3f}, dy/dx2 = {db:.3f}; vjp with cotangent 3: {vjp_fn(np.array(3.0))}")
        assert (round(float(value), 3), round(float(da), 3), round(float(db), 3)) == (11.652, 5.5, 1.716)
        assert close(vjp_fn(np.array(3.0)), [3 * 5.5, 3 * (2 - np.cos(5))])
        assert close(table1(np.array(1.0), np.array(1.0)), 0 + 1 - np.sin(1.0))
        """
    ),
    md("A program checks what it is given: other shapes than it was recorded with raise a `ValueError`."),
    code(
        """
        try:
            table1(np.ones(3), np.array(5.0))
        except ValueError as error:
            print(error)
        else:
            raise AssertionError("a program called with the wrong shape must raise")
        """
    ),
    md(
        """
        ## Saving and loading

        `p.save(path)` writes one `.npz` file: the columns, parameters, constants and guards, no
        pickled objects. `tp.load_program(path)` reads it with `allow_pickle=False`. Here a fresh
        Python process, which never saw `g`, loads the positive branch's program and replays it,
        guard included.
        """
    ),
    code(
        '''
        folder = tempfile.mkdtemp()
        path = os.path.join(folder, "g_positive.npz")
        p_pos.save(path)
        with np.load(path, allow_pickle=False) as saved:
            print(f"{os.path.getsize(path)} bytes:", sorted(saved.files))
        script = f"""
        import numpy as np
        import tape as tp
        p = tp.load_program({path!r})
        print(p)
        print(float(p(np.array(2.0))))
        try:
            p(np.array(-2.0))
        except ValueError as error:
            print(error)
        """
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
        print(run.stdout)
        *listing, value, refusal = run.stdout.splitlines()
        assert listing == str(p_pos).splitlines() and close(float(value), 2 * np.sin(2.0))
        assert "another path" in refusal  # x = -2 fails the guard: no result from the wrong path
        os.remove(path)
        os.rmdir(folder)
        '''
    ),
    md(
        """
        ## Speed against eager: Baydin's f, repeated

        For 0-d values the arithmetic costs next to nothing, so an eager call is all bookkeeping:
        recording each entry and sweeping it backwards, 10 µs or more per entry. A replay in the
        scalar kernel runs the columns in one Numba loop each way. Below, one `value_and_grad` call of
        the chain with `terms` copies of f (6 entries each), eagerly and compiled (median of 7 calls),
        and the compiled function's *first* call (record, lower, replay: paid once per signature;
        median of 3 fresh `tp.compile`s). "Entries" counts what eager records; the compiled program
        holds 5 + terms of them after CSE.

        The first kernel call in a process loads the Numba kernels (on a fresh install, compiles and
        caches them: several seconds); that already happened above.
        """
    ),
    code(
        """
        terms_list = [1, 2, 5, 10, 30, 100, 300, 1000]
        eager_ms, replay_ms, first_ms, kernels = [], [], [], []
        x1, x2 = tp.tensor(2.0), tp.tensor(5.0)
        for terms in terms_list:
            firsts = []
            for _ in range(3):  # a first call needs a fresh compiled function: three of them, for a median
                fresh = tp.compile(chain, static_argnums=2)
                vg = tp.value_and_grad(fresh, argnums=(0, 1))
                start = time.perf_counter()
                vc, gc = vg(x1, x2, terms)
                firsts.append(1e3 * (time.perf_counter() - start))
            first_ms.append(statistics.median(firsts))
            ve, ge = eager_vg(x1, x2, terms)
            assert close(vc, ve) and close(gc[0], ge[0]) and close(gc[1], ge[1])
            eager_ms.append(median_ms(eager_vg, x1, x2, terms))
            replay_ms.append(median_ms(vg, x1, x2, terms))
            kernels.append(fresh.program(x1, x2, terms).stats()["kernel"])
            assert fresh.stats()["recordings"] == 1
        print(f"{'terms':>6} {'entries':>8} {'eager ms':>9} {'replay ms':>10} {'first ms':>9} {'speed-up':>9}  kernel")
        for terms, e, r, f1, k in zip(terms_list, eager_ms, replay_ms, first_ms, kernels):
            print(f"{terms:6d} {6 * terms:8d} {e:9.3f} {r:10.3f} {f1:9.2f} {e / r:8.1f}×  {k}")
        assert kernels[0] is None and kernels[-1] == "scalar"
        """
    ),
    code(
        """
        entries = [6 * n for n in terms_list]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4))
        ax1.plot(entries, eager_ms, "o-", label="eager: record + backward")
        ax1.plot(entries, replay_ms, "s-", label="compiled: replay (forward + reverse)")
        ax1.plot(entries, first_ms, "^--", label="compiled: first call (record, lower, replay)")
        ax1.set_xscale("log")
        ax1.set_yscale("log")
        ax1.set_xlabel("entries (6 per copy of f)")
        ax1.set_ylabel("ms per value_and_grad call (median)")
        ax1.legend(fontsize=8)
        ax1.set_title("Baydin's f repeated: time per call")
        ax2.plot(entries, [e / r for e, r in zip(eager_ms, replay_ms)], "o-", color="C2")
        ax2.axhline(1.0, color="black", lw=0.8)
        for n, e, r, k in zip(entries, eager_ms, replay_ms, kernels):
            ax2.annotate(k or "Python", (n, e / r), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("entries")
        ax2.set_ylabel("eager time / replay time")
        ax2.set_title("Speed-up of a replay (label: what runs it)")
        plt.tight_layout()
        plt.show()
        """
    ),
    md(
        """
        Below 16 entries a program replays as a Python loop over the op table's rules, which saves
        the recording but little else. From there on the kernel's time grows by hundredths of a µs
        per entry while eager grows by ten or more, so the ratio climbs with the length of the
        program. The first call costs a few eager calls (it records, then lowers the tape): compiling
        pays off within the first handful of replays.

        ## Speed against eager: a small MLP loss

        The README's classifier: a tanh hidden layer of 16 units, log-softmax, the mean negative log
        likelihood of integer labels, on batches of 4 features. Every op in it has a kernel
        (`fallback_ops` is empty), but its `tanh` on 512 elements is faster in NumPy's SIMD loop than
        in a kernel calling libm per element, which leaves runs of kernel entries too short to be
        worth a call: `numpy_ops` lists every entry, and the program replays through the op table's
        NumPy rules. A replay then saves the recording and the tape's bookkeeping, not NumPy's own
        work, and the ratio is modest. Gradient descent is run both ways for 50 steps, and the
        parameters compared.
        """
    ),
    code(
        """
        def loss(W1, b1, W2, b2, X, y):
            h = tp.tanh(X @ W1 + b1)
            logp = tp.log_softmax(h @ W2 + b2, axis=-1)
            return -tp.mean(logp[np.arange(len(y)), y])


        def problem(batch, hidden=16, features=4, classes=3, seed=0):
            rng = np.random.default_rng(seed)
            params = [
                rng.normal(size=(features, hidden)) / np.sqrt(features),
                np.zeros(hidden),
                rng.normal(size=(hidden, classes)) / np.sqrt(hidden),
                np.zeros(classes),
            ]
            return params, rng.normal(size=(batch, features)), rng.integers(0, classes, batch)


        closs = tp.compile(loss)
        eager_step = tp.value_and_grad(loss, argnums=(0, 1, 2, 3))
        compiled_step = tp.value_and_grad(closs, argnums=(0, 1, 2, 3))

        params, X, y = problem(32)
        stats = closs.program(*params, X, y).stats()
        print({k: stats[k] for k in ("entries", "buffers", "bytes_forward", "bytes_reverse", "kernel")})
        print("fallback_ops:", stats["fallback_ops"], "numpy_ops:", stats["numpy_ops"])
        assert stats["kernel"] is None and stats["fallback_ops"] == {}
        assert sum(stats["numpy_ops"].values()) == stats["entries"]

        eager_params, compiled_params = list(params), list(params)
        for _ in range(50):
            le, ge = eager_step(*eager_params, X, y)
            lc, gc = compiled_step(*compiled_params, X, y)
            assert close(lc, le) and all(close(a, b) for a, b in zip(gc, ge))
            eager_params = [w - 0.5 * g for w, g in zip(eager_params, ge)]
            compiled_params = [w - 0.5 * g for w, g in zip(compiled_params, gc)]
        print(f"loss after 50 steps: eager {float(le):.12f}, compiled {float(lc):.12f}")
        assert all(close(a, b) for a, b in zip(compiled_params, eager_params))
        assert float(lc) < 0.9 * np.log(3)  # it learned something: below the loss of a uniform guess
        print(closs.stats())
        assert closs.stats()["recordings"] == 1
        """
    ),
    code(
        """
        batches = [8, 32, 128, 512]
        mlp_eager_ms, mlp_replay_ms = [], []
        for batch in batches:
            params, X, y = problem(batch)
            compiled_step(*params, X, y)  # the first call for this signature records
            mlp_eager_ms.append(median_ms(eager_step, *params, X, y, repeats=21))
            mlp_replay_ms.append(median_ms(compiled_step, *params, X, y, repeats=21))
        for batch, e, r in zip(batches, mlp_eager_ms, mlp_replay_ms):
            print(f"batch {batch:4d}: eager {e:.3f} ms, compiled {r:.3f} ms, speed-up {e / r:.2f}×")
        assert closs.stats()["recordings"] == len(batches)  # one program per batch shape (32 was there already)
        """
    ),
    code(
        """
        fig, ax = plt.subplots(figsize=(7, 3.8))
        where = np.arange(len(batches))
        ax.bar(where - 0.2, mlp_eager_ms, 0.4, label="eager: record + backward")
        ax.bar(where + 0.2, mlp_replay_ms, 0.4, label="compiled: Python replay")
        for i, (e, r) in enumerate(zip(mlp_eager_ms, mlp_replay_ms)):
            ax.annotate(f"{e / r:.2f}×", (i + 0.2, r), textcoords="offset points", xytext=(0, 3), ha="center")
        ax.set_xticks(where, [f"batch {b}" for b in batches])
        ax.set_ylabel("ms per value_and_grad call (median of 21)")
        ax.set_title("MLP loss 4-16-3, float64: eager against compiled")
        ax.legend(fontsize=8)
        plt.tight_layout()
        plt.show()
        """
    ),
    md(
        """
        Where the time goes decides what compiling buys: for many small operations (scalars, short
        vectors, a long loop of small steps) it is bookkeeping, and a kernel replay removes nearly all
        of it; for a few operations on larger arrays it is NumPy's work (BLAS, for the matmuls),
        which a replay runs just the same. The benchmarks (`python benchmarks/run.py --engines
        tape,tape-compiled,numpy`, the README's "Performance" section) measure both kinds on the
        workloads W1 to W5.
        """
    ),
]
FIGURES["08_compiled_programs"] = 2


# ------------------------------------------------------------------------------------------------


def build(name: str):
    """The notebook `name` (a key of NOTEBOOKS), without outputs."""
    nb = new_notebook(cells=NOTEBOOKS[name])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    # Stable cell ids, so that rebuilding an unchanged notebook gives the same file.
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:2]}-{i:02d}"
    return nb


def main(argv: list[str]) -> None:
    names = argv or list(NOTEBOOKS)
    for name in names:
        path = HERE / f"{name}.ipynb"
        nbformat.write(build(name), path)
        print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main(sys.argv[1:])

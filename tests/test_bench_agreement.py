"""The benchmark harness's agreement check, at tiny sizes and without timing anything.

The comparison runner (`benchmarks/run.py`) times an engine only after its value and gradients match
the hand-written NumPy reference. This file keeps that check honest in `make test`:

1. the reference itself against central finite differences, so a slip in a hand derivation is caught
   here rather than blamed on every engine that disagrees with it;
2. tape against the reference on every workload, through the same `check_agreement` the runner uses
   (a workload whose feature is not implemented yet is skipped with the reason);
3. the check rejects a wrong gradient, a wrong shape and a wrong value;
4. the report is produced from results, without timings or matplotlib.
"""

import os

import numpy as np
import pytest

from benchmarks import harness, report, workloads
from benchmarks.engines import NotAvailable, numpy_engine, tape_engine

SIZE = "tiny"
EPS = 1e-6


def _in_float64(problem: dict) -> dict:
    """W4 runs in float32; finite differences need float64 (the reference is dtype-generic)."""
    return {
        k: v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype == np.float32 else v
        for k, v in problem.items()
    }


def _reference_result(workload_key: str, problem: dict):
    implementation = numpy_engine.IMPLEMENTATIONS[workload_key][0]
    return implementation.run(implementation.setup(problem))


@pytest.mark.parametrize("workload_key", [k for k, w in workloads.WORKLOADS.items() if w.has_value])
def test_reference_gradients_match_finite_differences(workload_key):
    """⟨∇f, d⟩ against (f(p + εd) − f(p − εd)) / 2ε, along a random direction d for each input."""
    workload = workloads.WORKLOADS[workload_key]
    problem = _in_float64(workload.problem(SIZE))
    _, gradients = _reference_result(workload_key, problem)
    rng = np.random.default_rng(0)
    for name, gradient in zip(workload.wrt, gradients):
        direction = rng.standard_normal(np.shape(problem[name]))
        plus = _reference_result(workload_key, {**problem, name: problem[name] + EPS * direction})[0]
        minus = _reference_result(workload_key, {**problem, name: problem[name] - EPS * direction})[0]
        finite_difference = (plus - minus) / (2 * EPS)
        assert np.isclose(np.sum(gradient * direction), finite_difference, rtol=1e-6, atol=1e-7), name


def test_reference_hvp_matches_finite_differences():
    """W6: the gradient against differences of the objective, then H·v against differences of the gradient."""
    problem = workloads.W6.problem(SIZE)
    x, v = problem["x"], problem["v"]

    def objective(point):
        return workloads.hvp_objective(np, point)

    gradient = numpy_engine.hvp_objective_gradient(x)
    difference = (objective(x + EPS * v) - objective(x - EPS * v)) / (2 * EPS)
    assert np.isclose(gradient @ v, difference, rtol=1e-6)
    _, (hv,) = _reference_result("W6", problem)
    gradient_difference = (
        numpy_engine.hvp_objective_gradient(x + EPS * v) - numpy_engine.hvp_objective_gradient(x - EPS * v)
    ) / (2 * EPS)
    np.testing.assert_allclose(hv, gradient_difference, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "workload_key, implementation",
    [(key, impl) for key, impls in numpy_engine.IMPLEMENTATIONS.items() for impl in impls],
    ids=lambda item: item if isinstance(item, str) else (item.variant or "main"),
)
def test_reference_rows_pass_the_check(workload_key, implementation):
    """The NumPy engine's own rows (the 8-matmul baseline, the checkpointed loop) agree with the reference."""
    harness.check_agreement(workload_key, implementation, SIZE)


@pytest.mark.parametrize("workload_key", list(tape_engine.IMPLEMENTATIONS))
def test_tape_agrees_with_the_reference(workload_key):
    implementation = tape_engine.IMPLEMENTATIONS[workload_key][0]
    try:
        harness.check_agreement(workload_key, implementation, SIZE)
    except NotAvailable as reason:
        pytest.skip(str(reason))


def test_tape_records_the_op_counts_the_tables_divide_by():
    """W1 and W2 report µs per recorded op: the count must be what tape really records."""
    import tape as tp

    problem = workloads.W1.problem(SIZE)
    x1, x2 = tp.tensor(problem["x1"], requires_grad=True), tp.tensor(problem["x2"], requires_grad=True)
    with tp.record() as recorded:
        total = workloads.scalar_chain(tp, x1, x2, problem["terms"])  # kept: unreachable history is released
        assert len(recorded) == workloads.W1.recorded_ops(problem)

    problem = workloads.W2.problem(SIZE)
    x = tp.tensor(problem["x"], requires_grad=True)
    with tp.record() as recorded:
        total = workloads.small_array_chain(tp, x, problem["ops"])
        assert len(recorded) == workloads.W2.recorded_ops(problem)
    del total


def test_the_check_rejects_wrong_results():
    expected = harness.reference("W3", SIZE)
    value, gradients = expected
    harness.compare("W3", (value, [g.copy() for g in gradients]), expected)
    wrong_gradient = [gradients[0] * (1 + 1e-3), gradients[1], gradients[2]]
    with pytest.raises(harness.AgreementError, match="gradient w.r.t. x"):
        harness.compare("W3", (value, wrong_gradient), expected)
    with pytest.raises(harness.AgreementError, match="shape"):
        harness.compare("W3", (value, [gradients[0][:-1], gradients[1], gradients[2]]), expected)
    with pytest.raises(harness.AgreementError, match="value"):
        harness.compare("W3", (value + 1e-3 * abs(value), gradients), expected)
    with pytest.raises(harness.AgreementError, match="gradient w.r.t. a"):
        harness.compare("W3", (value, [gradients[0], np.asarray(np.nan), gradients[2]]), expected)


def test_report_from_results_without_timing():
    """The tables come out of a results dict: ratios to PyTorch, the targets, and rows that were not measured."""
    rows = [
        {"workload": "W1", "engine": "tape", "variant": "", "how": "", "status": "ok", "message": ""},
        {"workload": "W1", "engine": "torch", "variant": "", "how": "", "status": "ok", "message": ""},
        {"workload": "W6", "engine": "tape", "variant": "", "how": "", "status": "n/a", "message": "not yet"},
    ]
    for row, seconds in zip(rows[:2], (0.002, 0.004)):
        row.update(median_s=seconds, median=seconds * 1e6 / 6000, unit="µs/op", times_s=[seconds])
    results = {
        "command": "python benchmarks/run.py",
        "date": "today",
        "duration_s": 1.0,
        "size": SIZE,
        "repeats": 1,
        "min_time_s": 0.0,
        "machine": {"cpu": "cpu", "cpu_count": 2, "memory_gib": 1.0, "platform": "linux", "python": "3"},
        "thread_env": {"OMP_NUM_THREADS": "1"},
        "engines": {"tape": {"installed": True, "label": "tape"}, "jax": {"installed": False, "message": "absent"}},
        "rows": rows,
    }
    text = report.markdown(results)
    assert "| W1 scalar chain (µs/op) | tape | 0.333 | 0.50× |" in text
    assert "| W6 second order (µs) | tape | n/a |" in text
    assert "| W1 scalar chain (µs/op) | tape | 0.5× PyTorch | 0.50× | — | yes |" in text  # one round: no spread
    assert "| W1 scalar chain (µs/op) | tape (compiled) | 1× JAX (jit) | — | — | not measured |" in text
    assert "Not installed: jax: absent" in text


def test_targets_show_the_ratio_within_each_round():
    # The row's ratio is of medians over all rounds; the ratio within each round (the same moment's load,
    # the same hash seed) is listed beside it, so that a reader sees how far it moves.
    def row(engine, rounds_s):
        return {"workload": "W5", "engine": engine, "variant": "", "status": "ok", "round_medians_s": rounds_s}

    tape_row, torch_row = row("tape", [0.35, 0.36, 0.30]), row("torch", [0.50, 0.40, 0.60])
    tape_row["median_s"], torch_row["median_s"] = 0.35, 0.50
    (eager, *_) = report.targets({"rows": [tape_row, torch_row]})
    assert eager["ratio"] == pytest.approx(0.70)
    assert eager["round_ratios"] == pytest.approx([0.70, 0.90, 0.50])
    torch_row["round_medians_s"] = [0.5, 0.4]  # a round missing on one side: no per-round ratios
    assert report.targets({"rows": [tape_row, torch_row]})[0]["round_ratios"] == []


def test_each_round_runs_its_workers_with_its_own_hash_seed(monkeypatch, tmp_path):
    # A process's speed depends on its PYTHONHASHSEED (tape's W6 by 40%): round k runs every engine's
    # worker with seed k, so that runs repeat and engines see the same seeds.
    import json
    import os
    import subprocess

    environ = dict(os.environ)
    try:
        from benchmarks import run as bench_run  # sets the harness's thread variables in os.environ
    finally:
        os.environ.clear()
        os.environ.update(environ)
    seen = []
    real_run = subprocess.run

    def fake_worker(command, env=None, **kwargs):
        if "--worker" not in command:  # git, asked for the revision
            return real_run(command, env=env, **kwargs)
        seen.append((command[command.index("--worker") + 1], env["PYTHONHASHSEED"]))
        with open(command[command.index("--worker-output") + 1], "w") as out:
            json.dump({"engine": "numpy", "installed": False, "message": "not run in this test"}, out)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(bench_run.subprocess, "run", fake_worker)
    argv = ["--engines", "numpy,tape", "--workloads", "W1", "--rounds", "3", "--no-memory", "--no-chart"]
    bench_run.main(argv + ["--output-dir", str(tmp_path)])
    assert [seed for _, seed in seen] == ["1", "1", "2", "2", "3", "3"]  # round by round
    assert sorted(seen) == sorted((engine, str(k)) for k in (1, 2, 3) for engine in ("numpy", "tape"))
    assert json.loads((tmp_path / "results.json").read_text())["hash_seeds"] == [1, 2, 3]


def test_w2_floor_minimal_tape_and_parts_leave_the_store_as_it_was():
    """benchmarks/w2_floor.py: its hard-wired tape's gradient against central finite differences, and
    `--parts` (which stubs the store's appends while it times) restores them and times every part."""
    from benchmarks import w2_floor
    from tape.tape import Store

    x = np.random.default_rng(3).uniform(-1, 1, 6)
    ops = 10

    def value(v):
        y = v
        for k in range(ops):
            op = workloads.SMALL_CHAIN_CYCLE[k % len(workloads.SMALL_CHAIN_CYCLE)]
            y = y * workloads.SMALL_CHAIN_FACTOR if op == "mul" else y + v if op == "add" else getattr(np, op)(y)
        return y.sum()

    numeric = [(value(x + EPS * e) - value(x - EPS * e)) / (2 * EPS) for e in np.eye(x.size)]
    np.testing.assert_allclose(w2_floor.minimal_gradient(x, ops), numeric, rtol=1e-6, atol=1e-9)
    appends = Store.append1, Store.append2
    times = w2_floor.parts(x, ops, repeats=2)
    assert (Store.append1, Store.append2) == appends
    assert set(times) == {"pass", "forward", "forward, no append", "NumPy forward"}
    assert all(t > 0 for t in times.values())


def test_interleaved_ratios_in_one_process_and_across_checkouts(capsys):
    """benchmarks/interleaved.py: tape against its targets' baselines, alternating, after the agreement
    check; a workload whose baseline engine is not installed (PyTorch, outside the bench extra) is None."""
    from benchmarks import interleaved

    got = interleaved.ratios(["W3", "W4", "W1"], "tiny", passes=2)
    assert set(got) == {"W3", "W4", "W1"}
    assert got["W3"] > 0 and got["W4"] > 0
    try:
        import torch  # noqa: F401

        assert got["W1"] > 0
    except ImportError:
        assert got["W1"] is None
    # the driver: one fresh pinned process per checkout (here this one, twice), its ratios parsed back
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = ["--workloads", "W3", "--size", "tiny", "--passes", "1", "--processes", "1", "--repo", root, "--repo", root]
    assert interleaved.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("process 1") for line in lines) == 2
    assert sum(line.startswith("median") and "W3 " in line for line in lines) == 2

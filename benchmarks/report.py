"""Turn the runner's results into results.md (tables), results.png (a chart) and results.json.

Ratios are always between rows of the same run: medians on a shared machine drift from one run to
the next, but engines measured back to back drift together.
"""

from __future__ import annotations

import json
import os

from . import workloads

ENGINE_TITLES = {
    "tape": "tape",
    "tape-compiled": "tape (compiled)",
    "torch": "PyTorch",
    "autograd": "HIPS autograd",
    "jax": "JAX",
    "numpy": "NumPy, hand-written",
}
ENGINE_COLOURS = {
    "tape": "#d62728",
    "tape-compiled": "#9467bd",
    "torch": "#ee7f2d",
    "autograd": "#2ca02c",
    "jax": "#1f77b4",
    "numpy": "#7f7f7f",
}
MIB = 2**20


def row_name(row: dict) -> str:
    name = ENGINE_TITLES.get(row["engine"], row["engine"])
    return f"{name} ({row['variant']})" if row.get("variant") else name


def find(rows, workload: str, engine: str, variant: str = "") -> dict | None:
    """The measured row of an engine (and variant) on a workload, or None."""
    for row in rows:
        if row["workload"] == workload and row["engine"] == engine and row.get("variant", "") == variant:
            return row if row["status"] == "ok" else None
    return None


def ratio_to_torch(rows, row) -> float | None:
    torch_row = find(rows, row["workload"], "torch")
    if row["status"] != "ok" or torch_row is None:
        return None
    return row["median_s"] / torch_row["median_s"]


def _number(value: float) -> str:
    """Three significant digits, without exponents for the ranges these tables hold."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _mebibytes(count) -> str:
    return "—" if count is None else f"{count / MIB:.1f} MiB"


def workload_heading(workload_key: str) -> str:
    workload = workloads.WORKLOADS[workload_key]
    return f"{workload.key} {workload.title} ({workload.unit})"


def markdown_table(results: dict) -> str:
    rows = results["rows"]
    lines = [
        "| workload | engine | median | ratio to PyTorch | peak RSS growth | traced peak | runs | how |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        heading = workload_heading(row["workload"])
        if row["status"] != "ok":
            reason = "n/a" if row["status"] == "n/a" else row["status"].upper()
            lines.append(f"| {heading} | {row_name(row)} | {reason} | | | | | {row['message']} |")
            continue
        ratio = ratio_to_torch(rows, row)
        lines.append(
            f"| {heading} | {row_name(row)} | {_number(row['median'])} | "
            f"{'—' if ratio is None else f'{ratio:.2f}×'} | {_mebibytes(row.get('peak_rss_bytes'))} | "
            f"{_mebibytes(row.get('traced_peak_bytes'))} | {len(row['times_s'])} | {row.get('how', '')} |"
        )
    return "\n".join(lines)


def summary_table(results: dict) -> str:
    """The table in one screen: a line per workload (and per extra variant), a column per engine.

    Each cell is the median in the workload's unit and, in brackets, its ratio to PyTorch's.
    """
    rows = results["rows"]
    engine_names = [name for name in ENGINE_TITLES if any(r["engine"] == name for r in rows)]
    lines = [
        "| workload | " + " | ".join(ENGINE_TITLES[name] for name in engine_names) + " |",
        "|---|" + "---:|" * len(engine_names),
    ]
    seen = []
    for row in rows:
        line_key = (row["workload"], row.get("variant", ""))
        if line_key not in seen:
            seen.append(line_key)
    for workload_key, variant in seen:
        cells = []
        for name in engine_names:
            row = next(
                (
                    r
                    for r in rows
                    if (r["workload"], r.get("variant", ""), r["engine"]) == (workload_key, variant, name)
                ),
                None,
            )
            if row is None:
                cells.append("")
            elif row["status"] != "ok":
                cells.append(row["status"])
            else:
                ratio = ratio_to_torch(rows, row) if not variant else None
                cells.append(_number(row["median"]) + ("" if ratio is None else f" ({ratio:.2f}×)"))
        heading = workload_heading(workload_key) + (f", {variant}" if variant else "")
        lines.append(f"| {heading} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def long_loop_memory_table(results: dict) -> str:
    """W5 with and without checkpointing: time and peak memory side by side, per engine."""
    rows = results["rows"]
    lines = [
        "| engine | W5 time | W5 peak memory | W5-ckpt time | W5-ckpt peak memory |",
        "|---|---:|---:|---:|---:|",
    ]

    def memory(row):
        if row is None:
            return "—"
        traced = row.get("traced_peak_bytes")
        rss = _mebibytes(row.get("peak_rss_bytes"))
        return f"{_mebibytes(traced)} traced, {rss} RSS" if traced is not None else f"{rss} RSS"

    for name in ENGINE_TITLES:
        plain, checkpointed = find(rows, "W5", name), find(rows, "W5-ckpt", name)
        if plain is None and checkpointed is None:
            continue
        lines.append(
            f"| {ENGINE_TITLES[name]} | {_number(plain['median']) + ' ms' if plain else '—'} | {memory(plain)} | "
            f"{_number(checkpointed['median']) + ' ms' if checkpointed else '—'} | {memory(checkpointed)} |"
        )
    return "\n".join(lines)


def targets(results: dict) -> list[dict]:
    """tape against each of its targets: the ratio of the target's tape row to its baseline row."""
    rows = results["rows"]
    checks = []
    for workload in workloads.WORKLOADS.values():
        if not any(r["workload"] == workload.key for r in rows):
            continue
        for target in workload.targets:
            tape_row = find(rows, workload.key, target.engine, target.variant)
            baseline = find(rows, workload.key, target.baseline_engine, target.baseline_variant)
            ratio = tape_row["median_s"] / baseline["median_s"] if tape_row and baseline else None
            checks.append(
                {
                    "workload": workload.key,
                    "row": row_name({"engine": target.engine, "variant": target.variant}),
                    "baseline": row_name({"engine": target.baseline_engine, "variant": target.baseline_variant}),
                    "max_ratio": target.max_ratio,
                    "ratio": ratio,
                    "round_ratios": _round_ratios(tape_row, baseline) if ratio is not None else [],
                    "met": None if ratio is None else ratio <= target.max_ratio,
                }
            )
    return checks


def _round_ratios(row: dict, baseline: dict) -> list[float]:
    """The ratio within each round (both rows' medians of that round), where both have every round: how
    far a row moves with the load of the moment and the round's hash seed."""
    mine, theirs = row.get("round_medians_s") or [], baseline.get("round_medians_s") or []
    if len(mine) < 2 or len(mine) != len(theirs):
        return []
    return [a / b for a, b in zip(mine, theirs)]


def targets_table(results: dict) -> str:
    lines = [
        "| workload | row | target: row ≤ | measured | each round | met |",
        "|---|---|---|---:|---|---|",
    ]
    for check in targets(results):
        measured = "—" if check["ratio"] is None else f"{check['ratio']:.2f}×"
        rounds = ", ".join(f"{r:.2f}" for r in check.get("round_ratios") or []) or "—"
        met = "not measured" if check["met"] is None else ("yes" if check["met"] else "no")
        target = f"{check['max_ratio']:g}× {check['baseline']}"
        lines.append(
            f"| {workload_heading(check['workload'])} | {check['row']} | {target} | {measured} | {rounds} | {met} |"
        )
    return "\n".join(lines)


def machine_line(machine: dict) -> str:
    memory = f", {machine['memory_gib']:.0f} GiB" if machine.get("memory_gib") else ""
    return f"{machine['cpu']}, {machine['cpu_count']} cores{memory}, {machine['platform']}, Python {machine['python']}"


def markdown(results: dict) -> str:
    engines = results["engines"]
    installed = [f"{info['label']}" for info in engines.values() if info.get("installed")]
    missing = [f"{name}: {info['message']}" for name, info in engines.items() if not info.get("installed")]
    thread_env = " ".join(f"{k}={v!r}" if " " in v else f"{k}={v}" for k, v in results["thread_env"].items())
    load = results["machine"].get("load_average_at_start")
    revision = results["machine"].get("tape_revision") or "an unknown revision"
    parts = [
        "# Benchmark results",
        "",
        f"Command: `{results['command']}` ({results['size']} sizes), {results['date']}, "
        f"{results['duration_s']:.0f} s in all; tape at {revision}.",
        "",
        f"Machine: {machine_line(results['machine'])}" + (f"; load average at start {load[0]:.2f}." if load else "."),
        "",
        f"Threads: one per engine, in one process per (workload, engine): `{thread_env}`, "
        "and `torch.set_num_threads(1)`; each worker process bound to one CPU (`sched_setaffinity`)"
        + (
            f"; round k's processes run with PYTHONHASHSEED=k ({', '.join(map(str, results['hash_seeds']))})."
            if results.get("hash_seeds")
            else "."
        ),
        "",
        "Engines: " + ", ".join(installed) + "." + (" Not installed: " + "; ".join(missing) + "." if missing else ""),
        "",
        "Every row first checks its value and gradients against the hand-written NumPy reference (rtol 1e-6 in "
        "float64, 1e-4 in float32, relative to each output's largest entry); only then is it timed. Median of "
        f"at least {results['repeats']} runs and {results['min_time_s']:g} s of runs, back to back after two "
        f"warm-up runs (which pay for JIT compilation), split over {results.get('rounds', 1)} round(s) through "
        "every (workload, engine) process so that load on a shared machine hits all engines alike. W1 and W2 are "
        "in µs per recorded op (W1: 6,000 ops, W2: 201), the others per forward + backward pass.",
        "",
        "Peak memory of one more run (first round): *peak RSS growth* is the rise of the process's resident "
        "memory above its level before the run (after garbage collection and malloc_trim), the one measure that "
        "sees every engine's allocator; it is coarse for small workloads and misses memory an allocator kept "
        "pooled from the warm-up runs (XLA's, so JAX's figures are lower bounds). *traced peak* is tracemalloc's "
        "peak, exact for the engines whose arrays are NumPy arrays (tape, autograd, NumPy); PyTorch's and "
        "XLA's allocators are invisible to it.",
        "",
        "## Summary: median (ratio to PyTorch)",
        "",
        summary_table(results),
        "",
        "## W5: time and peak memory, with and without checkpointing",
        "",
        long_loop_memory_table(results),
        "",
        "## Every row",
        "",
        markdown_table(results),
        "",
        "## tape against its targets",
        "",
        "Ratios of medians from this run; *each round*: the ratio of the two rows' medians within each round "
        "(the same moment's load, the same hash seed), which shows how far the measured ratio moves.",
        "",
        targets_table(results),
        "",
    ]
    notes = [(w.key, note) for w in workloads.WORKLOADS.values() for note in w.notes]
    if notes:
        parts += ["Notes: " + "; ".join(f"{key}: {note}" for key, note in notes) + ".", ""]
    return "\n".join(parts)


def draw_chart(results: dict, path: str) -> None:
    """One panel per workload, a horizontal bar per measured row, on a log scale (engines span 1000×)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    keys = [k for k in workloads.WORKLOADS if any(r["workload"] == k for r in rows)]
    columns = min(2, max(1, len(keys)))
    lines = -(-len(keys) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(6.2 * columns, 2.4 * lines + 0.6), squeeze=False)
    for axis in axes.flat[len(keys) :]:
        axis.axis("off")
    for axis, key in zip(axes.flat, keys):
        panel = [r for r in rows if r["workload"] == key][::-1]  # top to bottom in the table's order
        measured = [r["median"] for r in panel if r["status"] == "ok"]
        axis.set_title(workload_heading(key), fontsize=10)
        axis.set_yticks(range(len(panel)), [row_name(r) for r in panel], fontsize=8)
        axis.set_ylim(-0.6, len(panel) - 0.4)
        if not measured:
            axis.text(0.5, 0.5, "nothing measured", ha="center", va="center", transform=axis.transAxes)
            continue
        axis.set_xscale("log")
        low, high = min(measured) / 3, max(measured) * 6
        axis.set_xlim(low, high)
        axis.tick_params(axis="x", labelsize=7)
        for i, row in enumerate(panel):
            if row["status"] != "ok":  # shown, so that a missing bar is never mistaken for a fast one
                axis.text(low * 1.1, i, row["status"], va="center", fontsize=8, color="#555555")
                continue
            axis.barh(i, row["median"], color=ENGINE_COLOURS.get(row["engine"], "#999999"), height=0.7)
            axis.text(row["median"] * 1.08, i, _number(row["median"]), va="center", fontsize=7)
        for target in workloads.WORKLOADS[key].targets[:1]:  # the eager target: one line per panel stays readable
            baseline = find(rows, key, target.baseline_engine, target.baseline_variant)
            if baseline:
                axis.axvline(baseline["median"] * target.max_ratio, color="#d62728", linestyle="--", linewidth=1)
    figure.suptitle(
        f"Forward + backward, median, one thread; dashed line: tape's target\n{machine_line(results['machine'])}",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(results: dict, output_dir: str, chart: bool = True) -> list[str]:
    """Write results.json, results.md and (if matplotlib is there) results.png; returns the paths."""
    written = []
    json_path = os.path.join(output_dir, "results.json")
    with open(json_path, "w") as out:
        json.dump(results, out, indent=1)
    written.append(json_path)
    markdown_text = markdown(results)
    if chart:
        png_path = os.path.join(output_dir, "results.png")
        try:
            draw_chart(results, png_path)
            written.append(png_path)
            markdown_text += "\n![median times per workload](results.png)\n"
        except ImportError:
            print('matplotlib is not installed (pip install -e ".[bench]"): no chart')
    md_path = os.path.join(output_dir, "results.md")
    with open(md_path, "w") as out:
        out.write(markdown_text)
    written.append(md_path)
    return written

"""Data-parallel training over MPI: the demo's two-moons MLP, with the batch split across processes.

    mpiexec -n 2 python examples/data_parallel.py      # two processes, each on its half of the batch
    python examples/data_parallel.py                   # one process on the whole batch: the same losses

Every rank holds the whole model and a shard of the batch. Each step, each rank runs the forward and
backward pass on its shard, `dist.allreduce_grads` sums the shards' gradients so that every rank holds
the full batch's gradient, and every rank takes the same step. The losses printed are those of the
full batch, the same (to rounding) however many processes share it. Needs the `mpi` extra:
pip install "wengert-tape[mpi]".
"""

import argparse
import sys
from pathlib import Path

import numpy as np

import tape as tp
from tape import distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the demo beside this file
from demo import init_mlp, mlp, two_moons  # noqa: E402  (the demo's data and model)


def shard_loss(params, x, labels, full_batch: int) -> tp.Tensor:
    """This shard's share of the full batch's mean logistic loss.

    Dividing by the full batch size (not the shard's) makes the shares add up to the full batch's
    loss, so allreduce_grads(op="sum") gives its gradient however unevenly the rows are split.
    """
    signs = 2.0 * labels - 1.0
    return tp.sum(tp.softplus(-signs * mlp(params, x))) / full_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1001, help="full batch size (default 1001)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--every", type=int, default=20, help="print the loss every this many steps")
    args = parser.parse_args()
    rank, size = dist.rank(), dist.size()

    # The same data on every rank; each keeps its contiguous block of rows (sizes differ by at most one).
    points, labels = two_moons(args.points, noise=0.1, rng=np.random.default_rng(0))
    mine = np.array_split(np.arange(args.points), size)[rank]
    x, y = tp.tensor(points[mine]), tp.tensor(labels[mine])

    # Seeded by rank on purpose: the ranks' initial weights differ until rank 0's are broadcast.
    tp.manual_seed(rank)
    params = init_mlp([2, 16, 16, 1])
    dist.broadcast(params, root=0)

    if rank == 0:
        print(f"{size} process(es), {args.points} points in all, {len(mine)} of them on rank 0")
    for step in range(args.steps + 1):
        with tp.record():
            loss = shard_loss(params, x, y, args.points)
        loss.backward()
        dist.allreduce_grads(params, op="sum")
        full_loss = dist.allreduce(loss.item(), op="sum")  # the full batch's loss, on every rank
        if rank == 0 and step % args.every == 0:
            print(f"step {step:4d}  loss {full_loss:.12f}")
        if step == args.steps:
            break
        for p in params:
            p -= args.lr * p.grad
            p.zero_grad()


if __name__ == "__main__":
    main()

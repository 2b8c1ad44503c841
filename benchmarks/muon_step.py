"""What one optimizer step of `optim=muon` costs on this machine, and why trainlab orthogonalizes in
float32 on CPUs.

    python benchmarks/muon_step.py           # 50 timed steps per row
    python benchmarks/muon_step.py --quick   # 5 (what the test suite runs)

The default recipe's network (tudui for digits: 1x32x32 inputs, 10 classes) with one batch's gradients
(batch 64): `torch.optim.AdamW`'s step, MuonWithAdamW's step (which orthogonalizes in float32 on a
CPU), the Newton-Schulz iterations alone in float32 and in bfloat16 (`torch.optim.Muon`'s dtype on every
device), and the forward + backward pass they add to; each the median of the timed repetitions after 3
untimed ones.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from common import machine, table

from trainlab.models.layers import input_and_output_parameters
from trainlab.models.tudui import TutorialCNN
from trainlab.optim.muon import MuonWithAdamW, orthogonalize


def median_ms(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 timed steps per row")
    repeats = 5 if parser.parse_args(argv).quick else 50
    torch.manual_seed(0)
    net = TutorialCNN(num_classes=10, in_channels=1, image_size=32)
    images = torch.randn(64, 1, 32, 32)

    def backward() -> None:
        net.zero_grad()
        net(images).logsumexp(1).mean().backward()

    backward()
    groups = MuonWithAdamW.split_param_groups(
        [{"params": list(net.parameters())}], input_and_output_parameters(net)
    )
    hidden = [p.grad.reshape(p.shape[0], -1) for g in groups if g["use_muon"] for p in g["params"]]
    rows = {
        "torch.optim.AdamW step": median_ms(torch.optim.AdamW(net.parameters()).step, repeats),
        "optim=muon step (Newton-Schulz in float32, trainlab on a CPU)": median_ms(
            MuonWithAdamW(groups).step, repeats
        ),
    }
    for dtype in (torch.float32, torch.bfloat16):
        name = f"Newton-Schulz of the {len(hidden)} hidden matrices in {str(dtype)[6:]}"
        rows[name] = median_ms(lambda d=dtype: [orthogonalize(m, 5, d) for m in hidden], repeats)
    rows["forward + backward, batch 64"] = median_ms(backward, repeats)
    base = rows["torch.optim.AdamW step"]
    print(machine() + "\n")
    print(f"tudui (digits), median of {repeats} steps\n")
    print(table(["step", "ms", "vs AdamW"], [[k, f"{v:.1f}", f"{v / base:.2f}x"] for k, v in rows.items()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

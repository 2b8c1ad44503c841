"""Speed options benchmark: training images/s of fp32 against each option trainlab exposes.

    python benchmarks/options.py           # ~3 minutes on 2 cores
    python benchmarks/options.py --quick   # a few seconds (what the test suite runs)

Each configuration trains the same network on the same random CIFAR-sized batches (forward, backward,
optimizer step) after warm-up steps; the table gives images/s and the ratio to fp32 measured in the same
run. The options and their config keys: `perf.channels_last=true`, `trainer.precision=bf16-mixed`
(autocast), `perf.compile=true` (torch.compile), `optim.fused=true` (one fused optimizer kernel).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import time
from collections.abc import Callable

import torch
from torch import nn

from trainlab.models.fastnet import FastNet
from trainlab.models.tudui import Tudui

OPTIONS = {
    "fp32": {},
    "channels_last": {"channels_last": True},
    "bf16-mixed": {"bf16": True},
    "channels_last + bf16-mixed": {"channels_last": True, "bf16": True},
    "fused optimizer": {"fused": True},
    "torch.compile": {"compile": True},
}


def recipe_fastnet() -> nn.Module:
    """The network of conf/experiment/cifar10_fast.yaml."""
    return FastNet(widths=(48, 96, 192), stem_width=24, activation=nn.ReLU)


def train_rate(
    make_net: Callable[[], nn.Module], batch: int, steps: int, warmup: int, **options: bool
) -> float:
    torch.manual_seed(0)
    net = make_net()
    memory = torch.channels_last if options.get("channels_last") else torch.contiguous_format
    net = net.to(memory_format=memory)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, fused=options.get("fused") or None)
    forward = torch.compile(net) if options.get("compile") else net
    images = torch.randn(batch, 3, 32, 32).contiguous(memory_format=memory)
    labels = torch.randint(0, 10, (batch,))
    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16) if options.get("bf16") else contextlib.nullcontext()
    )
    for step in range(warmup + steps):
        if step == warmup:
            started = time.perf_counter()
        with autocast:
            loss = nn.functional.cross_entropy(forward(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return batch * steps / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps, small batches")
    args = parser.parse_args(argv)
    batch, steps, warmup = (16, 3, 2) if args.quick else (128, 30, 5)
    nets = {"Tudui (the tutorials' CNN)": Tudui, "fastnet as in experiment=cifar10_fast": recipe_fastnet}
    options = {k: v for k, v in OPTIONS.items() if not (args.quick and v.get("compile"))}
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, {torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print(f"batch {batch}, {steps} timed steps after {warmup} warm-up steps\n")
    print("| network | option | img/s | ratio to fp32 |\n|---|---|---:|---:|")
    for name, make in nets.items():
        baseline = None
        for option, settings in options.items():
            rate = train_rate(make, batch, steps, warmup, **settings)
            baseline = baseline or rate
            print(f"| {name} | {option} | {rate:,.0f} | {rate / baseline:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

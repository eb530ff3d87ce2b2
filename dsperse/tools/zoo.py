"""Tiny models for the demo, the tests and the benchmarks, built with torch and exported to ONNX.

Weights are seeded, so the same name always gives the same file content.
``python -m dsperse.tools.zoo mlp model.onnx`` writes one.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

MODELS: dict[str, Callable[[], tuple[object, tuple[int, ...]]]] = {}


def _register(name: str):
    def deco(fn):
        MODELS[name] = fn
        return fn

    return deco


def _torch():
    import torch
    from torch import nn

    return torch, nn


@_register("mlp")
def mlp():
    """Three Gemm layers with ReLU: the bundled demo model (3 slices, k=15)."""
    torch, nn = _torch()
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3)), (1, 4)


@_register("mlp_wide")
def mlp_wide():
    """Same shape of graph as ``mlp`` with other widths: 'another model' in soundness tests."""
    torch, nn = _torch()
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)), (1, 4)


@_register("cnn")
def cnn():
    """Conv -> ReLU -> Conv -> ReLU -> Flatten -> Gemm."""
    torch, nn = _torch()
    return (
        nn.Sequential(
            nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Conv2d(2, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)
        ),
        (1, 1, 6, 6),
    )


@_register("cnn_wide")
def cnn_wide():
    """A wider CNN whose whole circuit needs more rows than 2^15: where slicing can lower k (benchmarks)."""
    torch, nn = _torch()
    return (
        nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 4),
        ),
        (1, 1, 8, 8),
    )


def _residual(cin: int, c: int, hw: int, out: int):
    """stem Conv -> ReLU -> [Conv -> ReLU -> Conv] + skip -> ReLU -> Linear head."""
    torch, nn = _torch()

    class Res(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(cin, c, 3, padding=1)
            self.c1 = nn.Conv2d(c, c, 3, padding=1)
            self.c2 = nn.Conv2d(c, c, 3, padding=1)
            self.head = nn.Linear(c * hw * hw, out)

        def forward(self, x):
            x = torch.relu(self.stem(x))
            y = torch.relu(self.c2(torch.relu(self.c1(x))) + x)
            return self.head(y.reshape(y.shape[0], -1))

    return Res(), (1, cin, hw, hw)


@_register("residual")
def residual():
    """A conv stem, a residual block (skip connection) and a head: cuts inside the block must be refused."""
    return _residual(1, 2, 5, 3)


def _block(torch, nn, d: int):
    class Block(nn.Module):
        def __init__(self, d=d):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
            self.proj = nn.Linear(d, d)
            self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
            self.d = d

        def forward(self, x):
            h = self.ln1(x)
            q, k, v = self.q(h), self.k(h), self.v(h)  # three Linears: EZKL has no Split op
            att = torch.softmax(q @ k.transpose(-1, -2) / self.d**0.5, dim=-1)
            x = x + self.proj(att @ v)
            return x + self.ff(self.ln2(x))

    return Block()


@_register("transformer")
def transformer():
    """One pre-norm attention block plus MLP over 4 tokens of width 8."""
    torch, nn = _torch()
    return _block(torch, nn, 8), (1, 4, 8)


@_register("transformer_wide")
def transformer_wide():
    """The same block over 16 tokens of width 32: its Linears need tiling by sequence rows at k=15."""
    torch, nn = _torch()
    return _block(torch, nn, 32), (1, 16, 32)


@_register("lenet_cifar")
def lenet_cifar():
    """LeNet-5 on 3x32x32 CIFAR input: a classic small CNN with MaxPool, a realistic benchmark workload."""
    torch, nn = _torch()
    return (
        nn.Sequential(
            nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        ),
        (1, 3, 32, 32),
    )


def _cifar_cnn(c: int):
    """The zoo's CIFAR CNN with ``c`` channels per conv, and its input shape."""
    _, nn = _torch()
    return nn.Sequential(
        nn.Conv2d(3, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
    ), (1, 3, 32, 32)


@_register("cifar16")
def cifar16():
    """A 16-channel CIFAR CNN: ~1.3 M rows as one circuit (k=21, more than 24 GiB to prove), tiled at k=16."""
    return _cifar_cnn(16)


@_register("cifar32")
def cifar32():
    """A wider 32-channel CIFAR CNN whose whole circuit is large: where slicing pays off (benchmarks)."""
    return _cifar_cnn(32)


@_register("cifar64")
def cifar64():
    """``cifar32`` with 64 channels: the largest zoo CNN, for scaling benchmarks."""
    return _cifar_cnn(64)


@_register("mlp_gemm_wide")
def mlp_gemm_wide():
    """An MLP dominated by one wide 256x256 Gemm: a single layer too big to split further (benchmarks)."""
    torch, nn = _torch()
    return (
        nn.Sequential(nn.Linear(16, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 4)),
        (1, 16),
    )


@_register("resblock")
def resblock():
    """A ResNet basic block (no BatchNorm) on 8 channels of 8x8: a realistic-size skip connection."""
    return _residual(3, 8, 8, 10)


@_register("cnn_tiled")
def cnn_tiled():
    """A Conv over 2^15 rows with small tiles: the default suite's tiled graph plan at max_logrows=15."""
    torch, nn = _torch()
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 6 * 6, 4)), (1, 3, 12, 12)


@_register("wide_boundary")
def wide_boundary():
    """A 3-slice chain whose two boundaries hold 33,000 elements: two commitment columns each at k=15."""
    torch, nn = _torch()

    class Wide(nn.Module):
        def forward(self, x):
            y = x.reshape(1, 4, 1).expand(1, 4, 8250).reshape(1, 33000)
            z = -y
            return z[:, -4:] + z[:, :4]

    return Wide(), (1, 4)


def export(name: str, path: Path | str, seed: int = 0) -> Path:
    """Build model ``name`` with seeded weights and export it to ``path`` (opset 18, which tract is tested on)."""
    torch, _ = _torch()
    if name not in MODELS:
        raise KeyError(f"unknown zoo model {name!r}; choose from {sorted(MODELS)}")
    torch.manual_seed(seed)
    module, shape = MODELS[name]()
    module.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, torch.randn(*shape), str(path), dynamo=False, opset_version=18,
            input_names=["input"], output_names=["output"], do_constant_folding=True,
        )
    return path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m dsperse.tools.zoo", description="Write a tiny seeded ONNX model.")
    p.add_argument("name", choices=sorted(MODELS))
    p.add_argument("path", type=Path)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    print(export(a.name, a.path, a.seed))


if __name__ == "__main__":
    main()

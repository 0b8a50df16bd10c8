"""Will a run fit? A pre-flight estimate of one training step's memory, checked before the first
step, so that a batch or a network too big for the machine is one line instead of an
out-of-memory kill minutes later (or a machine that swaps until it stops answering).

The estimate is deliberately simple: the values one sample leaves along the network (each
layer's input, pre-activation and output, from the model's own dummy pass) times the rows a
step pushes through it, times a factor measured on the costliest rule, plus the parameters
with everything kept per parameter (weights, B, gradients, optimiser state).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from engine.errors import ConfigError

# Measured (Dec 2026, CPU): a node-perturbation step with metrics peaks at 2.3× the per-sample
# values times the batch on 64-1024-1024-1024-10 at batch 16,384, and at 2.9× on 784-512×3-10 at
# batch 8,192 (allocator slack weighs more on smaller tensors); backprop at 1.4×. 4 leaves room.
STEP_FACTOR = 4.0
# W, its gradient, B (or the tensor backprop sends the error through), up to three optimiser slots
PER_PARAMETER = 6


def values_per_sample(model) -> int:
    """Activations one sample leaves along the network, from one clean dummy pass."""
    device = next(model.parameters()).device
    with torch.no_grad():
        trace = model(torch.zeros(1, *model.input_shape, device=device).flatten(1),
                      use_feedback=False)
    return sum(t[0].numel() for t in (*trace.inputs, *trace.pre, *trace.hidden))


def step_bytes(model, rows: int, eval_rows: int = 0) -> int:
    """About how much memory a training step over `rows` samples needs (or an evaluation pass
    over `eval_rows`, without gradients: one set of values, if that is more)."""
    size = next(model.parameters()).element_size()
    params = sum(p.numel() for p in model.parameters())
    values = max(STEP_FACTOR * rows, eval_rows) * values_per_sample(model)
    return int(size * (values + PER_PARAMETER * params))


def free_bytes(device: torch.device) -> int | None:
    """Memory a new allocation can still get on `device` (None when it cannot be told)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    free = _meminfo_available()
    limit = _cgroup_room()
    if free is None or limit is None:
        return free if limit is None else limit
    return min(free, limit)


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_room() -> int | None:
    """What a container's memory limit leaves (cgroup v2), or None without one."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return int(limit) - int((base / "memory.current").read_text())
    except (OSError, ValueError):
        return None


def check_fits(model, rows: int, device: torch.device, batch_size: int, eval_rows: int = 0,
               free: int | None = None) -> None:
    """ConfigError, in one line, when a step over `rows` samples would not fit on `device`."""
    need = step_bytes(model, rows, eval_rows)
    free = free_bytes(device) if free is None else free
    if free is None or need <= free:
        return
    params = PER_PARAMETER * sum(p.numel() * p.element_size() for p in model.parameters())
    fix = "lower the width or the depth" if params > need / 2 else "lower batch_size or the width"
    raise ConfigError(f"batch_size={batch_size} is not allowed with this network on {device}: "
                      f"a training step needs about {_gb(need)} and {_gb(free)} is free; {fix}")


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"

"""Will a run fit? A pre-flight estimate of one training step's memory, checked before the first
step, so that a batch or a network too big for the machine is one line instead of an
out-of-memory kill minutes later (or a machine that swaps until it stops answering). A fully
connected network is checked from its layer sizes before its weights exist: building and
initialising a 100M-weight network alone takes seconds and gigabytes.

The estimate is deliberately simple: the values one sample leaves along the network (each
layer's input, pre-activation and output) times the rows a step pushes through it, times a
factor measured on the costliest rule, plus the parameters with everything kept per parameter
(weights, B, gradients, optimiser state, the step's and the metrics' temporaries), plus ridge
regression's float64 sums where B is learnt by ridge.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.errors import ConfigError
from engine.values import shown

# Measured (Dec 2026, CPU): a node-perturbation step with metrics peaks at 2.3× the per-sample
# values times the batch on 64-1024-1024-1024-10 at batch 16,384, and at 2.9× on 784-512×3-10 at
# batch 8,192 (allocator slack weighs more on smaller tensors); backprop at 1.4×. 4 leaves room.
STEP_FACTOR = 4.0
# Peak memory of building a network and taking logged steps with Adam, in copies of its
# parameters (Dec 2026, CPU): 7.6–7.7 for every rule on 784-30000-10, whose weights are nearly
# all in the first layer; 9.4 (bp, fa, np) to 10.4 (kp, ss) on 64-6000-6000-10 and 10.1 (np) to
# 12.4 (kp, on a CI machine) on 64-4000-4000-10, nearly all above it (14 for ss on
# 64-3000-3000-10, where allocator slack weighs more). Every parameter: W, its gradient, two
# Adam slots, the backprop reference's gradient, the optimiser step's temporaries; one of a
# layer above a hidden site also B and the metrics' temporaries.
PER_PARAMETER = 8
PER_FEEDBACK_PARAMETER = 6
# Ridge, per regression of n outputs on f features (float64): V, the identity, V + γI and its
# Cholesky factor (f² each); S, the solution and its transposed copy (n·f each). Measured on
# 64-3000-3000-10 with np and sg: 6–7 f²-sized arrays for the 3000² layer.
RIDGE_SQUARE, RIDGE_CROSS = 4, 3


@dataclass(frozen=True)
class NetworkSize:
    """What the estimate needs of a network: from a built model, or from a fully connected
    network's layer sizes before it is built."""
    parameters: int
    feedback_parameters: int            # those of the layers above a hidden site, whose B is sent through
    values_per_sample: int
    # per layer, the regression of its feedback B: (outputs, features, rows per sample); a
    # convolution regresses every position of a sample (its patches) as a row
    regressions: tuple[tuple[int, int, int], ...]
    sites: tuple[int, ...]              # hidden sites' sizes, input side first
    element_size: int = 4

    @classmethod
    def of_sizes(cls, sizes: list[int]) -> "NetworkSize":
        """A fully connected network of `sizes` (input, hidden widths, output): each layer's input,
        pre-activation and output per sample, as `values_per_sample` traces them."""
        return cls(parameters=sum((a + 1) * b for a, b in zip(sizes, sizes[1:])),
                   feedback_parameters=sum((a + 1) * b for a, b in zip(sizes[1:], sizes[2:])),
                   values_per_sample=sizes[0] + 3 * sum(sizes[1:-1]) + sizes[-1],
                   regressions=tuple((a, b, 1) for a, b in zip(sizes, sizes[1:])),
                   sites=tuple(sizes[1:-1]), element_size=torch.get_default_dtype().itemsize)

    @classmethod
    def of_model(cls, model) -> "NetworkSize":
        inputs = [model.input_shape, *model.hidden_shapes()]
        regressions = []
        for layer, shape in zip(model.layers, inputs):
            n, f = layer.solution_shape(layer.backprop_feedback())
            regressions.append((n, f, math.prod(shape[1:]) if isinstance(layer, torch.nn.Conv2d) else 1))
        return cls(parameters=sum(p.numel() for p in model.parameters()),
                   feedback_parameters=sum(p.numel() for layer in model.layers[1:] for p in layer.parameters()),
                   values_per_sample=values_per_sample(model),
                   regressions=tuple(regressions) * model.members,      # one regression per member
                   sites=tuple(model.sizes[1:-1]) * model.members,
                   element_size=next(model.parameters()).element_size())

    def population(self, members: int) -> "NetworkSize":
        """The size of `members` such networks trained together: P times the parameters and the
        regressions; the values per sample stay (a step pushes P times the rows)."""
        if members == 1:
            return self
        return dataclasses.replace(self, parameters=self.parameters * members,
                                   feedback_parameters=self.feedback_parameters * members,
                                   regressions=self.regressions * members,
                                   sites=self.sites * members)

    @property
    def n_out(self) -> int:
        return self.regressions[-1][1]


def values_per_sample(model) -> int:
    """Activations one sample leaves along the network, from one clean dummy pass."""
    device = next(model.parameters()).device
    with torch.no_grad():
        trace = model(torch.zeros(model.members, *model.input_shape, device=device).flatten(1),
                      use_feedback=False)
    return sum(t[0].numel() for t in (*trace.inputs, *trace.pre, *trace.hidden))


def _size(network) -> NetworkSize:
    return network if isinstance(network, NetworkSize) else NetworkSize.of_model(network)


def _parts(size: NetworkSize, rows: int, eval_rows: int, ridge: str | None) -> tuple[int, int, int]:
    """Bytes of (the values along the network, everything kept per parameter, ridge's arrays)."""
    values = size.element_size * max(STEP_FACTOR * rows, eval_rows) * size.values_per_sample
    params = size.element_size * (PER_PARAMETER * size.parameters
                                  + PER_FEEDBACK_PARAMETER * size.feedback_parameters)
    return int(values), params, ridge_bytes(size, ridge, rows)


def ridge_bytes(network, kind: str | None, rows: int) -> int:
    """Ridge regression's arrays for B: none without ridge (kind None); per site for a
    "layerwise" rule (B ~ Wᵀ of each layer above a hidden site) or a "direct" one (B from the
    output error to each site). A convolution's patches are rows × positions × features."""
    if kind is None:
        return 0
    size = _size(network)
    sites = (size.regressions[1:] if kind == "layerwise" else
             [(s, size.n_out, 1) for s in size.sites])
    total = 0
    for n, f, positions in sites:
        total += 8 * (RIDGE_SQUARE * f * f + RIDGE_CROSS * n * f)
        if positions > 1:                      # unfolded patches, and their reshaped copy
            total += 2 * size.element_size * rows * positions * f
    return total


def step_bytes(model, rows: int, eval_rows: int = 0, ridge: str | None = None) -> int:
    """About how much memory a training step over `rows` samples needs (or an evaluation pass
    over `eval_rows`, without gradients: one set of values, if that is more). `model` is a
    built network or a NetworkSize; `ridge` the feedback kind of a rule learning B by ridge."""
    return sum(_parts(_size(model), rows, eval_rows, ridge))


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
               free: int | None = None, ridge: str | None = None, network: str | None = None) -> None:
    """ConfigError, in one line, when a step over `rows` samples would not fit on `device`.
    `model`: a built network, or a NetworkSize to check one before it is built; `network`: the
    settings that size it (e.g. "width=9000 with depth 2"), named when its weights are the
    problem."""
    size = _size(model)
    values, params, solver = parts = _parts(size, rows, eval_rows, ridge)
    need = sum(parts)
    free = free_bytes(device) if free is None else free
    if free is None or need <= free:
        return
    if solver and need - solver <= free:     # ridge is what does not fit: sgd would
        raise ConfigError(f"feedback_mode='ridge' is not allowed with this network on {device}: its "
                          f"float64 regression of B needs about {_gb(solver)}, a training step about "
                          f"{_gb(need)} in all, and {_gb(free)} is free; use feedback_mode sgd, or "
                          "lower the width")
    if params > need / 2 and network is not None:
        raise ConfigError(f"{network} is not allowed on {device}: the network's {size.parameters:,} "
                          f"weights need about {_gb(need)} for a training step (with their feedback, "
                          f"gradients and optimiser state) and {_gb(free)} is free; lower the width "
                          "or the depth")
    fix = "lower the width or the depth" if params > need / 2 else "lower batch_size or the width"
    raise ConfigError(f"batch_size={batch_size} is not allowed with this network on {device}: "
                      f"a training step needs about {_gb(need)} and {_gb(free)} is free; {fix}")


def _gb(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def check_run_fits(cfg, rule, network, device: torch.device, eval_rows: int) -> None:
    """`check_fits` for a run of `cfg` with learning rule class `rule`: its K noise draws widen
    the batch, ridge adds its sums, a population of P seeds pushes P times the rows.
    `network`: a built model, or a fully connected NetworkSize (one member's) before it is."""
    draws = cfg.noise_draws if "noise_draws" in rule.options else 1
    ridge = (rule.feedback_kind if rule.learns_feedback and "feedback_mode" in rule.options
             and cfg.feedback_mode == "ridge" else None)
    named = None
    if isinstance(network, NetworkSize):
        named = f"width={shown(cfg.width)} with depth {cfg.depth}"
        if cfg.members() > 1:
            named += f" and {cfg.members()} members"
        network = network.population(cfg.members())
    check_fits(network, cfg.batch_size * draws * cfg.members(), device, cfg.batch_size,
               eval_rows=eval_rows * cfg.members(), ridge=ridge, network=named)

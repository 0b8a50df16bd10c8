"""A population: P members of one network trained in one step, each with its own random streams.

Members are stacked along the first axis of every tensor, member-major, the layout grouped
convolution uses for its kernels: a layer's weight is (P·out, in), a feedback matrix (P·in, out),
a batch (P·B, features) whose rows k·B … (k+1)·B − 1 are member k's. A member's block is a view
(`split`), and P = 1 is exactly the single network's shapes: an ordinary run is a population of one,
on the same code path.

Member k draws everything random (initial weights, feedback, batch order, noise, dropout masks)
from its own generators, seeded as the single run of seed `seed + k` seeds its own, so member k
*is* that run: the tests hold every rule to it.
"""

from __future__ import annotations

import hashlib
import math
from typing import Callable

import torch


def split(t: torch.Tensor, members: int) -> torch.Tensor:
    """The member-stacked `t` viewed as (P, rows per member, *rest)."""
    return t.view(members, t.shape[0] // members, *t.shape[1:])


def per_member(values: tuple[float, ...], t: torch.Tensor) -> torch.Tensor:
    """Member k's value on every one of its rows of the member-stacked `t`, shaped to broadcast
    against it: (P·rows, 1, …)."""
    column = torch.tensor(values, dtype=t.dtype, device=t.device).repeat_interleave(t.shape[0] // len(values))
    return column.view(-1, *[1] * (t.dim() - 1))


class Streams:
    """One torch.Generator per member, and draws stacked member-major.

    `stack(draw)` calls `draw(generator)` once per member and stacks the results, so any
    function that draws from one generator draws for the population; with one member it
    returns that draw itself (no copy), as the single run does."""

    def __init__(self, generators: list[torch.Generator]):
        self.generators = generators

    @classmethod
    def seeded(cls, seeds: list[int], device, offset: int = 0) -> "Streams":
        return cls([torch.Generator(device=device).manual_seed(s + offset) for s in seeds])

    @classmethod
    def for_noise(cls, members: list[tuple[int, float]], device) -> "Streams":
        """One stream per member for its node noise alone, seeded by the member's (seed, σ): runs
        of one seed at different σ draw unrelated noise, and member k still is its single run."""
        return cls([torch.Generator(device=device).manual_seed(noise_seed(s, sigma)) for s, sigma in members])

    @classmethod
    def of(cls, generator: "torch.Generator | Streams") -> "Streams":
        """A single generator as a population of one (what a test or notebook passes)."""
        return generator if isinstance(generator, Streams) else cls([generator])

    def __len__(self) -> int:
        return len(self.generators)

    def stack(self, draw: Callable[[torch.Generator], torch.Tensor]) -> torch.Tensor:
        if len(self.generators) == 1:
            return draw(self.generators[0])
        return torch.cat([draw(g) for g in self.generators])

    def get_state(self):
        """One state for one member (a single run's checkpoint holds a tensor), else a list."""
        states = [g.get_state() for g in self.generators]
        return states[0] if len(states) == 1 else states

    def set_state(self, state) -> None:
        states = state if isinstance(state, (list, tuple)) else [state]
        if len(states) != len(self.generators):
            raise ValueError(f"it holds {len(states)} members' random states for {len(self.generators)} members")
        for g, s in zip(self.generators, states):
            g.set_state(s)


def noise_seed(seed: int, sigma: float) -> int:
    """A 63-bit seed that depends on both (a hash, so nearby seeds and σ's are unrelated)."""
    digest = hashlib.sha256(f"node noise {int(seed)} {float(sigma)!r}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def mean(values: list[float]) -> float:
    """The mean of the defined (non-NaN) values; NaN when none is."""
    defined = [v for v in values if not math.isnan(v)]
    return sum(defined) / len(defined) if defined else math.nan


def std(values: list[float]) -> float:
    """The sample standard deviation of the defined values; NaN below two."""
    defined = [v for v in values if not math.isnan(v)]
    if len(defined) < 2:
        return math.nan
    m = sum(defined) / len(defined)
    return math.sqrt(sum((v - m) ** 2 for v in defined) / (len(defined) - 1))


def mean_record(members: list[dict]) -> dict:
    """Members' records averaged field by field (and layer by layer), NaNs left out."""
    scalars = {k: mean([m[k] for m in members]) for k in members[0] if k != "layers"}
    layers = [{k: mean([m["layers"][i][k] for m in members]) for k in members[0]["layers"][i]}
              for i in range(len(members[0]["layers"]))]
    return {**scalars, "layers": layers}


SYMBOLS = {"sigma": "σ", "lr": "lr", "feedback_lr": "η_B"}


def group_name(group: dict) -> str:
    """'σ=0.1 lr=0.001': the compared settings of a group of members ('' when none are)."""
    return " ".join(f"{SYMBOLS.get(k, k)}={v:g}" for k, v in group.items())


def member_name(who: dict) -> str:
    """'seed 3', or 'seed 3, σ=0.1 lr=0.001' in a population that compares settings."""
    group = group_name({k: v for k, v in who.items() if k != "seed"})
    return f"seed {who['seed']}" + (f", {group}" if group else "")

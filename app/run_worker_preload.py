"""Imported once by the run processes' forkserver, so that every run starts warm.

Importing torch and the engine, and building one optimiser (whose first construction imports
torch._dynamo, seconds of work), happens here once instead of at every Start.
"""

import torch

import engine.trainer  # noqa: F401
from app import run_worker  # noqa: F401

torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)

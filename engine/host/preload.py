"""Imported once by the run processes' forkserver, so that every run starts warm.

Importing torch and the engine happens here once instead of at every Start. No optimiser is
built here any more: the trainer's (engine.optim) do not import torch._dynamo, which is what
made torch.optim's first construction and step cost seconds; their own first step takes
milliseconds. The run folder's writer (pandas, pyarrow) is imported here too: ~0.3 s a run
otherwise, before its first step, and its pages are then shared between the runs.
"""

import pyarrow.parquet  # noqa: F401
import torch  # noqa: F401

import engine.runs.writer  # noqa: F401
import engine.trainer  # noqa: F401
from engine.host import worker  # noqa: F401

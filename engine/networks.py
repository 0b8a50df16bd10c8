"""Networks of feedback layers (engine/layers.py), the zoo of the paper's models, and their init.

A network is a stack of blocks: layer → activation → optional max-pool. Between two blocks sits
a *hidden site*: the block's output after dropout. That is where node perturbation adds its
noise and where direct feedback injects the output error, so noise, masks and feedback always
refer to the same tensor. The forward pass returns a `Trace` with every layer's input and
pre-activation, so a rule can ask autograd for the error δ at each layer.

A fully connected network may hold a population of P members (engine/members.py): its batches
are P stacked blocks of rows, one per member, and `build_model` makes member k the network the
single run of seed `seed + k` makes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import ConfigError
from engine.layers import FeedbackConv2d, FeedbackLinear
from engine.members import Streams

ACTIVATION_FNS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "linear": lambda a: a,
}


class _Replay(torch.autograd.Function):
    """A layer's output from an earlier pass over the same input, handed on as it is; its
    backward is autograd's backward of the layer itself (`backprop_grads`), through W. The
    weight is an input only when its gradient is wanted."""

    @staticmethod
    def forward(ctx, x, a, layer, weight):
        ctx.save_for_backward(x)
        ctx.layer = layer
        return a.view_as(a)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        grad_x, grad_w = ctx.layer.backprop_grads(g, x, ctx.needs_input_grad[0],
                                                  ctx.needs_input_grad[3])
        return grad_x, None, None, grad_w


# ----------------------------------------------------------------- networks
class Taps(Protocol):
    """Functions in the forward pass whose backward a rule may rewrite: `hidden` returns what
    the layer above reads, `output` the network's output. After the backward, `sent` is the
    error each hidden site received (of the batch-mean loss)."""

    sent: list[torch.Tensor] | None

    def hidden(self, i: int, h: torch.Tensor) -> torch.Tensor: ...
    def output(self, a: torch.Tensor) -> torch.Tensor: ...


@dataclass
class Trace:
    out: torch.Tensor                 # network output ŷ (pre-softmax for cross-entropy)
    inputs: list[torch.Tensor]        # each layer's input: x, then the hidden sites (flattened for FC)
    pre: list[torch.Tensor]           # pre-activation of each layer: a₁, …, a_N (a_N = ŷ)
    hidden: list[torch.Tensor] = field(default_factory=list)  # block outputs before mask and noise


@dataclass
class Block:
    layer: nn.Module
    activation: str = "linear"
    pool: int | None = None           # max-pool kernel size, if any
    pool_stride: int | None = None    # default: the kernel size
    pool_padding: int = 0
    dropout: float = 0.0              # dropout on this block's output (the hidden site)
    flatten_input: bool = False       # conv → fully connected transition


class FeedbackNet(nn.Module):
    """A stack of blocks ending in a linear output layer (no activation)."""

    def __init__(self, blocks: list[Block], input_shape: tuple[int, ...]):
        super().__init__()
        self.init = "torch"               # the scheme the weights were drawn with (see INITS)
        self.blocks = blocks
        self.layers = nn.ModuleList(b.layer for b in blocks)
        self.members = blocks[0].layer.members
        self.input_shape = tuple(input_shape)
        with torch.no_grad():       # site shapes, found by running a dummy sample through
            trace = self.forward(torch.zeros(self.members, *self.input_shape).flatten(1),
                                 use_feedback=False)
        self.site_shapes = [tuple(h.shape[1:]) for h in trace.hidden]
        self.sizes = [math.prod(self.input_shape), *(math.prod(s) for s in self.site_shapes),
                      trace.out.shape[1]]

    def hidden_shapes(self) -> list[tuple[int, ...]]:
        """Per-sample shape of every hidden site, input side first."""
        return self.site_shapes

    def sample_masks(self, rows: int, generator: torch.Generator | Streams, device) -> list | None:
        """Inverted-dropout masks for every site of a batch of `rows` (all members' together), to
        share between a step's passes (None: no dropout). Each member draws from its own stream."""
        if not any(b.dropout for b in self.blocks[:-1]):
            return None
        streams, batch = Streams.of(generator), rows // self.members
        masks = []
        for block, shape in zip(self.blocks[:-1], self.site_shapes):
            if block.dropout:
                keep = 1.0 - block.dropout
                draw = streams.stack(lambda g: torch.rand(batch, *shape, generator=g, device=device))
                masks.append((draw < keep).to(torch.get_default_dtype()) / keep)
            else:
                masks.append(None)
        return masks

    def forward(self, x: torch.Tensor, noise: list[torch.Tensor] | None = None,
                masks: list | None = None, use_feedback: bool = True,
                taps: Taps | None = None, first_hidden: torch.Tensor | None = None,
                replay: list[torch.Tensor] | None = None, replay_weights: bool = False) -> Trace:
        """`first_hidden`: block 1's clean output from an earlier pass over the same batch. The
        pass then starts there, as nothing below the first hidden site is ever perturbed: node
        perturbation's noisy pass need not recompute layer 1 (often the widest). The trace then
        lacks layer 1's input and pre-activation.

        `replay`: every layer's pre-activation from an earlier clean pass of this network over
        the same batch and masks, with the same weights. Each layer then hands its saved
        pre-activation on instead of recomputing it, and its backward is backprop's (through W,
        never B): backprop's errors without the forward's matrix products. The weights get
        gradients only with `replay_weights`; without them, start at `first_hidden` (the input
        needs no gradient, so nothing would flow below block 2)."""
        trace = Trace(out=x, inputs=[], pre=[])
        h = x.view(x.shape[0], *self.input_shape) if len(self.input_shape) > 1 else x
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            if i == 0 and first_hidden is not None:
                h = first_hidden
            else:
                if block.flatten_input:
                    h = h.flatten(1)
                trace.inputs.append(h)
                a = (block.layer(h, use_feedback=use_feedback) if replay is None else
                     _Replay.apply(h, replay[i], block.layer,
                                   block.layer.weight if replay_weights else None))
                trace.pre.append(a)
                if i == last:
                    trace.out = taps.output(a) if taps is not None else a
                    return trace
                h = ACTIVATION_FNS[block.activation](a)
                if block.pool:
                    h = F.max_pool2d(h, block.pool, block.pool_stride or block.pool, block.pool_padding)
            trace.hidden.append(h)
            if masks is not None and masks[i] is not None:
                h = h * masks[i]
            if noise is not None and noise[i] is not None:
                h = h + noise[i]
            if taps is not None:
                h = taps.hidden(i, h)
        raise AssertionError("unreachable")


# ----------------------------------------------------------------- the zoo
def mlp(n_in: int, widths: list[int], n_out: int, activation: str, members: int = 1) -> FeedbackNet:
    sizes = [n_in, *widths, n_out]
    blocks = [Block(FeedbackLinear(a, b, members), activation) for a, b in zip(sizes[:-1], sizes[1:])]
    return FeedbackNet(blocks, (n_in,))


def autoencoder(n_in: int, widths: list[int], activation: str, members: int = 1) -> FeedbackNet:
    """An MLP trained to reproduce its input; the middle hidden layer is a linear bottleneck."""
    sizes = [n_in, *widths, n_in]
    middle = len(widths) // 2
    blocks = [Block(FeedbackLinear(a, b, members), "linear" if i == middle else activation)
              for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    return FeedbackNet(blocks, (n_in,))


def conv_small(image_shape, n_out: int, activation: str, members: int = 1) -> FeedbackNet:
    """Two 5×5 conv layers (16, 32 channels, each with 2×2 max-pool), FC 128, output.

    Small enough to train for a few thousand steps on a 2-core CPU in minutes."""
    c, h, w = image_shape
    flat = 32 * (h // 4) * (w // 4)
    blocks = [Block(FeedbackConv2d(c, 16, 5, padding=2, members=members), activation, pool=2),
              Block(FeedbackConv2d(16, 32, 5, padding=2, members=members), activation, pool=2),
              Block(FeedbackLinear(flat, 128, members), activation, flatten_input=True),
              Block(FeedbackLinear(128, n_out, members))]
    return FeedbackNet(blocks, image_shape)


def conv_cifar(image_shape, n_out: int, activation: str, dropout: float = 0.5,
               members: int = 1) -> FeedbackNet:
    """The paper's CIFAR network: conv 5×5×96 → max-pool 3/2 → conv 5×5×128 → pool →
    conv 5×5×256 → pool → FC 2048 → FC 2048 → out, with dropout 0.5 on the FC layers."""
    c, h, w = image_shape
    blocks = [Block(FeedbackConv2d(c_in, c_out, 5, padding=2, members=members), activation, pool=3,
                    pool_stride=2, pool_padding=1)
              for c_in, c_out in ((c, 96), (96, 128), (128, 256))]
    side = h
    for _ in range(3):
        side = (side + 2 * 1 - 3) // 2 + 1          # each pool 3/2 with padding 1 halves the side
    blocks += [Block(FeedbackLinear(256 * side * side, 2048, members), activation, dropout=dropout,
                     flatten_input=True),
               Block(FeedbackLinear(2048, 2048, members), activation, dropout=dropout),
               Block(FeedbackLinear(2048, n_out, members))]
    return FeedbackNet(blocks, image_shape)


# Each model: what it is, and whether it needs images (C, H, W).
MODELS = {
    "mlp": "fully connected: `depth` hidden layers of `width` units, linear output",
    "autoencoder": "fully connected autoencoder: hidden `width`s with a linear middle layer, "
                   "output = input (e.g. depth 3, width 200,2,200: the paper's 784-200-2-200-784)",
    "conv-small": "2 conv layers (16, 32 channels, 5×5, max-pool 2) → FC 128 → output; "
                  "depth and width are not used",
    "conv-cifar": "the paper's CIFAR net: conv 96/128/256 (5×5, pool 3/2) → FC 2048 → FC 2048, "
                  "dropout 0.5; depth and width are not used",
}
CONV_MODELS = ("conv-small", "conv-cifar")

# Weight initialisations. The reference code draws weights and biases from N(0, 2/fan_in), √6 ≈
# 2.45× PyTorch's U(±1/√fan_in): larger weights give better-conditioned errors δ in a sigmoid
# net, and learning B with W frozen needs about 5× fewer samples for the same angle.
INITS = {
    "torch": "PyTorch's default: weights and biases U(±1/√fan_in)",
    "paper": "the paper's reference code: weights and biases N(0, 2/fan_in)",
}


@torch.no_grad()
def initialise(model: FeedbackNet, scheme: str) -> FeedbackNet:
    """Redraw every layer's weights and biases under `scheme` from the global RNG."""
    model.init = scheme
    if scheme == "paper":
        for layer in model.layers:
            std = (2.0 / layer.fan_in()) ** 0.5
            layer.weight.normal_(0.0, std)
            layer.bias.normal_(0.0, std)
    return model


def build_model(cfg, data, seeds: list[int] | None = None) -> FeedbackNet:
    """The network cfg.model describes, sized for `data` (an engine.data.registry.Dataset),
    initialised by cfg.init from the global RNG; with `seeds`, a population whose member k is
    the network drawn after `torch.manual_seed(seeds[k])` (the caller's RNG state is kept)."""
    if seeds is None:
        return initialise(_architecture(cfg, data), cfg.init)
    singles = []
    for seed in seeds:
        # manual_seed seeds every CUDA device too: fork them when there are any in use
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            singles.append(build_model(cfg, data))
    if len(singles) == 1:
        return singles[0]
    model = _architecture(cfg, data, members=len(singles))
    model.init = cfg.init
    with torch.no_grad():                    # stack the members' tensors, member-major
        for name, p in model.named_parameters():
            p.copy_(torch.cat([dict(s.named_parameters())[name] for s in singles]))
    return model


def fully_connected_sizes(cfg, data) -> list[int] | None:
    """[input, *hidden widths, output] of the fully connected network `build_model` makes for cfg
    (mlp, autoencoder), known before it is built; None for a conv net."""
    if cfg.model == "mlp":
        return [data.n_in, *cfg.widths(), data.n_out]
    if cfg.model == "autoencoder":
        return [data.n_in, *cfg.widths(), data.n_in]
    return None


def _architecture(cfg, data, members: int = 1) -> FeedbackNet:
    sizes = fully_connected_sizes(cfg, data)
    if cfg.model == "mlp":
        return mlp(sizes[0], sizes[1:-1], sizes[-1], cfg.activation, members)
    if cfg.model == "autoencoder":
        return autoencoder(sizes[0], sizes[1:-1], cfg.activation, members)
    image_shape = getattr(data, "image_shape", None)
    if image_shape is None:
        raise ConfigError(f"model={cfg.model!r} is not allowed for dataset {data.name!r}: "
                          "a conv net needs an image dataset")
    if cfg.model == "conv-small":
        return conv_small(image_shape, data.n_out, cfg.activation, members=members)
    return conv_cifar(image_shape, data.n_out, cfg.activation, members=members)

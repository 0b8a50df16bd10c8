"""The one interface every learning rule implements.

A rule owns the feedback state of a model (its B matrices, regression statistics, …). For each
batch it writes the forward-weight gradients into `.grad` (the trainer's optimiser consumes
whatever is there) and updates its own feedback weights. The trainer and the app know rules
only through this class and the `RULES` registry, so a new rule is one new module.

Conventions: layers are numbered 1..N from the input; hidden site i (1..N-1, the input of
layer i+1) receives its error through `feedback_matrices()[i-1]`: for layer-wise rules the
feedback tensor of layer i+1, shaped like W_{i+1}ᵀ (linear) or the kernel (conv); for direct
(DFA-form) rules a matrix of shape (units at site i) × n_out fed by the output error.

In a population (engine/members.py) every tensor here is the members' blocks stacked: the batch,
the losses, the errors, B; and every random draw comes from each member's own stream.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from engine.live import Live
from engine.errors import ConfigError
from engine.members import Streams
from engine.settings import option

RULES: dict[str, type["LearningRule"]] = {}


def register(cls: type["LearningRule"]) -> type["LearningRule"]:
    """Class decorator: make a rule available by its `name` to the CLI, trainer and app."""
    cls.title = cls.title or cls.name
    RULES[cls.name] = cls
    return cls


@dataclass
class StepResult:
    loss: torch.Tensor                 # per-sample loss of the *clean* network
    out: torch.Tensor                  # clean output
    weight_grads: list[torch.Tensor]   # the rule's ∂L/∂Wᵢ (batch mean), i = 1..N
    mean_deltas: list[torch.Tensor]    # ∂(batch-mean loss)/∂aᵢ, i = 1..N: see `deltas`
    mean_site_errors: list[torch.Tensor] | None = None   # the same at each hidden site
    input_shapes: list[torch.Size] = field(default_factory=list)  # each layer's input shape (all members' rows)
    masks: list | None = None          # dropout masks, shared by every pass of this step
    first_hidden: torch.Tensor | None = None      # block 1's clean output (before mask and noise)
    estimates: list[torch.Tensor | None] | None = None   # NP's λ̂ᵢ per hidden site (None: unperturbed)
    # Every layer's pre-activation in the clean network (None when the pass that trained was
    # noisy): with first_hidden and masks, what backprop's errors can be replayed from without
    # a second forward pass (engine/reference.py).
    pre: list[torch.Tensor] | None = None
    members: int = 1                   # the population's P: the batch is P blocks of loss.shape[0] / P rows

    # Per-sample errors are the batch-mean ones times the batch size, each scaled on first use
    # only: rules that neither regress B nor get measured this step never pay for the copies,
    # and nothing pays for δ₁, which only the tests read.
    @functools.cached_property
    def deltas(self) -> Sequence[torch.Tensor]:
        """The rule's per-sample δᵢ = ∂L/∂aᵢ, i = 1..N."""
        return _PerSample(self.mean_deltas, self.batch)

    @property
    def batch(self) -> int:
        """Samples per member."""
        return self.loss.shape[0] // self.members

    @functools.cached_property
    def site_errors(self) -> Sequence[torch.Tensor] | None:
        """The error each hidden site received from the backward pass, per sample."""
        if self.mean_site_errors is None:
            return None
        return _PerSample(self.mean_site_errors, self.batch)


class _PerSample(Sequence):
    """The batch-mean gradients `means`, each times the batch size when first read."""

    def __init__(self, means: list[torch.Tensor], batch: int):
        self._means, self._batch = means, batch
        self._scaled: list[torch.Tensor | None] = [None] * len(means)

    def __len__(self) -> int:
        return len(self._means)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        j = range(len(self))[i]                 # negative indices; IndexError past the end
        if self._scaled[j] is None:
            self._scaled[j] = self._means[j] * self._batch
        return self._scaled[j]

    def __repr__(self) -> str:
        return repr(list(self))


def _gaussian(shape, sigma: float | tuple[float, ...], generator: torch.Generator | Streams,
              device) -> torch.Tensor:
    """`torch.randn(shape, generator=generator) * sigma`, bit for bit, in one pass on the CPU;
    for a population's streams, each member's such draw (with its own σ, where `sigma` gives one
    per member), stacked.

    torch's CPU normal_ draws every tensor of 16 or more numbers as torch.randn does (the same
    uniforms, the same Box-Muller), scaling by σ as it stores them, so the product is the one
    randn · σ rounds to; smaller tensors take a scalar path that rounds differently, and other
    devices keep the product. A member's block of one buffer is filled in place, as a fresh
    tensor of its shape would be (no buffer per member, no concatenation)."""
    streams = Streams.of(generator)
    sigmas = sigma if isinstance(sigma, tuple) else (sigma,) * len(streams)
    if torch.device(device).type == "cpu" and math.prod(shape) >= 16:
        rows, out = shape[0], torch.empty((len(streams) * shape[0], *shape[1:]), device=device)
        for k, g in enumerate(streams.generators):
            out[k * rows:(k + 1) * rows].normal_(0.0, sigmas[k], generator=g)
        return out
    if len(streams) == 1:
        return torch.randn(shape, generator=streams.generators[0], device=device) * sigmas[0]
    return torch.cat([torch.randn(shape, generator=g, device=device) * s
                      for g, s in zip(streams.generators, sigmas)])


def init_like(scheme: str, fan_in: int, shape, generator: torch.Generator | Streams,
              device) -> torch.Tensor:
    """A random tensor at a forward layer's init scale under `scheme` (see networks.INITS):
    U(−1/√fan_in, 1/√fan_in) for "torch", N(0, 2/fan_in) for "paper"; one `shape` per member,
    stacked, when `generator` is a population's streams."""
    if isinstance(generator, Streams):
        return generator.stack(lambda g: init_like(scheme, fan_in, shape, g, device))
    if scheme == "paper":
        return torch.randn(shape, generator=generator, device=device) * (2.0 / fan_in) ** 0.5
    bound = 1.0 / fan_in ** 0.5
    return (torch.rand(shape, generator=generator, device=device) * 2 - 1) * bound


# Read by every rule trained by the base `compute_gradients` (or the same noisy pass).
TRAIN_ON_NOISE = option(False, "rules with a fixed B: train on the noisy network anyway, to see what the "
                        "noise alone does", label="Train on the noisy network")
# By default a run's node noise comes from its seed's rule stream: runs of one seed draw one z
# whatever their σ (ξ = σz), so a σ comparison changes σ alone, and a rule's B init and noise
# share a stream. Independent noise makes each (seed, σ) draw its own.
INDEPENDENT_NOISE = option(False, "draw the node noise from a stream of its own for each seed and σ, so "
                           "runs that differ only in σ draw independent noise (by default one draw z per "
                           "seed, ξ = σz, whatever σ is)", label="Independent noise per σ",
                           when=lambda cfg: cfg.rule not in RULES or RULES[cfg.rule].uses_noise(cfg))


# The loss change node noise causes is about σ·‖g‖; a float32 loss of order 1 is resolved to
# ~1e-7, so below σ ≈ 1e-6 the change is rounding noise, and near 1e-19 σ² underflows to 0.
MIN_SIGMA = 1e-6


class LearningRule:
    name: ClassVar[str] = ""
    title: ClassVar[str] = ""                     # the display name ("FA: feedback alignment")
    summary: ClassVar[str] = ""
    # The settings of its own it reads, by name, declared with engine.settings.option() (in its
    # module, or beside the mechanism several rules share): each is a CLI flag, a URL key and a
    # sidebar widget shown only for the rules that list it, read as cfg.<name>.
    options: ClassVar[dict] = {"train_on_noise": TRAIN_ON_NOISE, "independent_noise": INDEPENDENT_NOISE}
    feedback_kind: ClassVar[str] = "layerwise"    # "layerwise" (B ~ Wᵀ), "direct" (DFA-form), "none" (pnp)
    learns_feedback: ClassVar[bool] = False

    def __init__(self, model, cfg, generator: torch.Generator | Streams):
        """`cfg` is read for the settings that stay fixed; the live ones (σ, lr, feedback_lr)
        come with each step as its `live` argument. A step called without one (a test, a
        notebook) uses `self.live`, the values cfg had when the rule was made. `generator`: the
        rule's random stream, or one per member of a population. The node noise comes from it
        too, or, with `independent_noise`, from `self.noise`, one stream per member's (seed, σ)."""
        self.model = model
        self.cfg = cfg
        self.live = Live.of(cfg)
        self.generator = Streams.of(generator)
        self.members = model.members
        self.device = next(model.parameters()).device
        self.noise = self.generator
        if cfg.independent_noise:
            first = cfg.values_of("sigma")[0]
            self.noise = Streams.for_noise([(m["seed"], m.get("sigma", first)) for m in cfg.member_values()],
                                           self.device)

    # ------------------------------------------------------------ interface

    @classmethod
    def uses_noise(cls, cfg) -> bool:
        """Whether this rule, under cfg, perturbs the network (and so needs sigma > 0)."""
        return bool(cfg.train_on_noise)

    @classmethod
    def check(cls, cfg) -> None:
        """Refuse, with the one-line ConfigError, a set-up this rule cannot train (called by
        RunConfig.validate(), so the dashboard shows it inline before Start)."""
        lowest = min(cfg.values_of("sigma"))
        if cls.uses_noise(cfg) and not lowest >= MIN_SIGMA:
            raise ConfigError(f"sigma={lowest!r} is not allowed for rule {cls.name!r}: "
                              f"node perturbation needs sigma >= {MIN_SIGMA:g} (below it the loss "
                              "change the noise causes is lost in float32 rounding)")

    def feedback_matrices(self) -> list[torch.Tensor]:
        """The matrix that carries the error into each hidden layer, input side first."""
        raise NotImplementedError

    def compute_gradients(self, x: torch.Tensor, y: torch.Tensor, objective, live: Live | None = None) -> StepResult:
        """Write forward-weight gradients into `.grad` and report the batch (feedback unchanged)."""
        return self.forward_backward(x, y, objective, noisy=self.cfg.train_on_noise, live=live)

    def learn_feedback(self, x, y, objective, result: StepResult, live: Live | None = None) -> None:
        """Update the feedback weights from this batch (fixed-feedback rules: nothing).

        Called after `compute_gradients` and after the trainer has measured the step, so the
        metrics see the feedback that actually carried this step's errors.
        """

    def train_step(self, x: torch.Tensor, y: torch.Tensor, objective, live: Live | None = None) -> StepResult:
        """Both halves of a step, for callers that do not measure in between."""
        result = self.compute_gradients(x, y, objective, live)
        self.learn_feedback(x, y, objective, result, live)
        return result

    def before_optimizer_step(self) -> None:
        """Hook called just before the optimiser applies `.grad` (also when W is frozen)."""

    def after_optimizer_step(self, live: Live | None = None) -> None:
        """Hook for rules whose feedback follows the forward weights' applied update."""

    def error_signals(self, result: StepResult) -> list[torch.Tensor]:
        """The error each hidden site receives from this rule, per sample."""
        if result.site_errors is not None:          # captured by the backward pass
            return result.site_errors
        layers = self.model.layers
        return [layers[i + 1].input_grad(d, b, result.input_shapes[i + 1])
                for i, (d, b) in enumerate(zip(result.deltas[1:], self.feedback_matrices()))]

    def state_dict(self) -> dict:
        return {"feedback": [b.detach().cpu() for b in self.feedback_matrices()]}

    def load_state_dict(self, state: dict) -> None:
        for b, saved in zip(self.feedback_matrices(), state["feedback"]):
            b.copy_(saved)

    # -------------------------------------------------------------- helpers
    def attach_feedback(self, matrices: list[torch.Tensor] | None) -> None:
        """Route each hidden layer's error through `matrices` (None: through Wᵀ, as backprop)."""
        layers = self.model.layers
        layers[0].feedback = None       # nothing below the first layer needs its error
        for layer, b in zip(layers[1:], matrices or [None] * (len(layers) - 1)):
            layer.feedback = b

    def sample_noise(self, x: torch.Tensor, sigma: float | tuple[float, ...],
                     sites: list[int] | None = None) -> list[torch.Tensor | None]:
        """ξᵢ ~ N(0, σ²I) for each hidden site in `sites` (default: all), None for the others."""
        shapes = self.model.hidden_shapes()
        sites = range(len(shapes)) if sites is None else sites
        rows = x.shape[0] // self.members
        return [_gaussian((rows, *shape), sigma, self.noise, x.device) if i in sites else None
                for i, shape in enumerate(shapes)]

    def forward_backward(self, x, y, objective, noisy: bool = False, taps=None,
                         live: Live | None = None) -> StepResult:
        """One pass through the rule's backward; gradients of the batch-mean loss into `.grad`.

        With `noisy`, the pass that trains is the perturbed network (the noise-only ablation);
        the reported loss is still the clean network's.
        """
        model = self.model
        weights = [layer.weight for layer in model.layers]
        biases = [layer.bias for layer in model.layers]
        masks = model.sample_masks(x.shape[0], self.generator, x.device)
        noise = self.sample_noise(x, (live or self.live).sigma) if noisy else None
        trace = model(x, noise=noise, masks=masks, taps=taps)
        loss = objective.per_sample(trace.out, y)
        # Autograd on the batch *mean* writes the forward gradients as they are (no copy of every
        # weight gradient divided by the batch); per-sample δ's are batch × the mean's δ's (see
        # StepResult). The gradients at the hidden sites are the errors the backward sent through
        # B, kept so that neither the metrics nor the regression of B recompute them.
        # With taps (direct feedback) the sites' errors are the ones the taps sent: not asked for.
        n, batch = len(weights), x.shape[0] // self.members
        sites = trace.inputs[1:] if taps is None else []
        grads = torch.autograd.grad(loss.sum() / batch, weights + biases + trace.pre + sites)
        for p, g in zip(weights + biases, grads[:2 * n]):
            p.grad = g
        out = trace.out.detach()
        clean_loss = loss.detach()
        if noisy:
            with torch.no_grad():
                out = model(x, masks=masks, use_feedback=False).out
                clean_loss = objective.per_sample(out, y)
        return StepResult(loss=clean_loss, out=out, weight_grads=[w.grad for w in weights],
                          mean_deltas=list(grads[2 * n:3 * n]),
                          mean_site_errors=taps.sent if taps is not None else list(grads[3 * n:]),
                          masks=masks, input_shapes=[t.shape for t in trace.inputs],
                          pre=None if noisy else [a.detach() for a in trace.pre],
                          first_hidden=trace.hidden[0].detach() if trace.hidden else None,
                          members=self.members)

"""What each metric is called, once: its plain-words title, its notation, its unit, what a good
value is, and the short column head of the CLI's table. The dashboard's plots, the CLI's summary
and the report's figures all read these. A leaf module: naming a metric imports no torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str          # the record's key (per layer: <name>_<layer> in flat records)
    title: str         # plain words, for a plot's title
    notation: str      # the paper's notation
    unit: str          # the axis label
    good: str          # what a good value is, in one phrase
    short: str         # the CLI table's column head
    per_layer: bool = True


# The per-layer alignment metrics, in the order records, plots and tables list them.
LAYER = (
    Metric("weight_angle_deg", "Feedback B vs Wᵀ: angle", "∠(B, Wᵀ)", "degrees",
           "0° = B points like Wᵀ, 90° = unrelated", "weight°"),
    Metric("relative_error", "Feedback B vs Wᵀ: relative error", "‖Wᵀ − B‖/‖W‖", "relative error",
           "0 = B equals Wᵀ, scale included", "rel. error"),
    Metric("sign_congruence", "Signs of B that agree with Wᵀ", "sign(B) = sign(Wᵀ)",
           "fraction of equal signs", "1 = every sign agrees, 0.5 = chance (coin flips)", "sign agree"),
    Metric("signal_angle_deg", "Error signal vs backprop's: angle", "∠(δ, δ_BP)", "degrees",
           "0° = same as backprop, 90° = unrelated", "signal°"),
    Metric("update_angle_deg", "Weight change vs backprop's: angle", "∠(ΔW, ΔW_BP)", "degrees",
           "0° = same as backprop, 90° = unrelated", "update°"),
    Metric("estimator_angle_deg", "NP's error estimate vs the true error", "∠(λ̂, ∂L/∂h)", "degrees",
           "0° = exact, 90° = no information", "estimate°"),
    Metric("estimator_snr_db", "NP's error estimate: signal vs noise", "SNR", "dB",
           "higher is better; 0 dB = noise as large as the signal", "SNR dB"),
)
SCALAR = (
    Metric("loss", "Loss", "loss", "loss", "lower is better", "loss", per_layer=False),
    Metric("accuracy", "Accuracy", "accuracy", "accuracy", "higher is better; 1 = every example right",
           "acc", per_layer=False),
    Metric("test_error", "Test error", "test error", "%", "lower is better", "test err %",
           per_layer=False),
)
METRICS = {m.name: m for m in LAYER + SCALAR}
LAYER_METRICS = tuple(m.name for m in LAYER)


def axis_label(name: str) -> str:
    """A figure's axis label: the notation with its unit, e.g. "∠(δ, δ_BP) (°)"."""
    m = METRICS[name]
    unit = {"degrees": "°", "fraction of equal signs": "fraction"}.get(m.unit, m.unit)
    return m.notation if unit in (m.notation, "relative error", "accuracy") else f"{m.notation} ({unit})"

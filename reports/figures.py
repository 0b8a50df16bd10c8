"""The report's figures, one function per experiment, drawn from its saved results.

matplotlib is imported lazily: it is the notebooks' extra, not a core dependency, and the engine
never imports it. `make_figures(res)` returns {name: Figure}; `save_figures` writes PNGs
atomically (scripts/reproduce.py, docs/figures/).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import pandas as pd

from engine.experiments import Results, load_model
from engine.metric_names import METRICS, axis_label

# Where the figures are read: a notebook cell shows one at most ~900 px wide (JupyterLab beside its
# file browser on a 1280-px screen; the report's page is narrower still), at 100 px an inch when it
# is narrower. So a figure is at most 9.6 inches wide, panels wrap onto rows, and no text is set
# below 8 pt: every label lands at 10 px or more (a 17-inch strip at 7 pt showed 5-6 px).
NOTEBOOK_PX = 900
WIDTH_IN = 9.6
SMALL_PT = 8


def readable_px(fig, points: float) -> float:
    """How many pixels high `points` of text on `fig` are where it is read (see NOTEBOOK_PX)."""
    return points * min(100 / 72, NOTEBOOK_PX / (72 * fig.get_figwidth()))


# Axis labels from the metric registry (engine/metric_names.py), and the report's own columns.
METRIC_NAMES = {"test_accuracy": "test accuracy", "test_loss": "test loss (per sample)",
                "test_error_tail": "test error (%), last 5 evaluations",
                **{name: axis_label(name) for name in METRICS}}


def _plt():
    import matplotlib
    if not os.environ.get("MPLBACKEND") and "ipykernel" not in __import__("sys").modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _history_band(ax, hist: pd.DataFrame, col: str, label: str, scale: float = 1.0, **kw):
    """mean ± std over seeds of one history column against step."""
    h = hist[["step", "seed", col]].dropna()
    if h.empty:
        return
    g = h.groupby("step")[col]
    m, s = g.mean() * scale, g.std(ddof=1).fillna(0) * scale
    line, = ax.plot(m.index, m.values, label=label, **kw)
    ax.fill_between(m.index, (m - s).values, (m + s).values, alpha=0.2, color=line.get_color())


def _grid(plt, panels: int, height: float, columns: int = 2):
    """A figure of `panels` axes, `columns` to a row, WIDTH_IN wide (the axes left over hidden),
    laid out by constrained layout so that a legend outside the axes gets its room."""
    columns = min(columns, panels)
    rows = math.ceil(panels / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(WIDTH_IN, height * rows), squeeze=False,
                             layout="constrained")
    flat = list(axes.flat)
    for ax in flat[panels:]:
        ax.set_visible(False)
    return fig, flat[:panels]


def _legend_below(fig, axes) -> None:
    """One legend for every line of `axes`, under them: in a panel it would hide curves."""
    seen: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(label, handle)
    if seen:
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", fontsize=SMALL_PT,
                   ncol=min(3, len(seen)), frameon=False)


def _log_panel(ax, title: str, xlabel: str) -> None:
    """A panel of a quantity that converges like a power of the steps: both axes logarithmic."""
    ax.set_title(title, fontsize=9)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3, which="both")


def _style(i: int) -> dict:
    """The i-th condition's line: ten colours, then the same colours dashed (§2 draws 12)."""
    return {"color": f"C{i % 10}", "linestyle": ("-", "--", ":")[i // 10 % 3]}


def _with_error(hist: pd.DataFrame) -> pd.DataFrame:
    if "test_accuracy" in hist:
        hist = hist.assign(test_error=100 * (1 - pd.to_numeric(hist["test_accuracy"])))
    return hist


def plot_curves(history: pd.DataFrame, metrics: list[str], conditions: list[str] | None = None,
                title: str = "", layers: str = "mean"):
    """One panel per metric, one line (mean ± std over seeds) per condition."""
    plt = _plt()
    history = _with_error(history)
    conditions = conditions or list(dict.fromkeys(history["condition"]))
    fig, axes = _grid(plt, len(metrics), 3.2)
    for ax, m in zip(axes, metrics):
        col = m if m in history else f"{m}_{layers}"
        for i, c in enumerate(conditions):
            h = history[history["condition"] == c]
            if col in h:
                _history_band(ax, h, col, c, **_style(i))
        ax.set_xlabel("step")
        ax.set_ylabel(METRIC_NAMES.get(m, m) + ("" if m in history else f" [{layers}]"))
        ax.grid(alpha=0.3)
    _legend_below(fig, axes)
    fig.suptitle(title, fontsize=11)
    return fig


# The paper's frozen-W numbers (method.md §6, MNIST, 10⁶ steps), read off its Fig. 2.
PAPER_FIG2 = {"signal_angle_deg_1": (1, 2), "signal_angle_deg_2": (0.1, 0.2),
              "relative_error_1": (0.6, 0.6), "relative_error_2": (5e-3, 4e-2)}


def fig_feedback(res: Results):
    plt = _plt()
    h, f = res.history, res.final
    figs = {}
    panels = [("signal_angle_deg_1", "signal angle, hidden layer (°)"),
              ("signal_angle_deg_2", "signal angle, top layer (°)"),
              ("relative_error_1", "‖Wᵀ − B‖/‖W‖, hidden layer"),
              ("relative_error_2", "‖Wᵀ − B‖/‖W‖, top layer")]
    fig, axes = _grid(plt, 4, 3.2)
    curves = [(f"{c} [{ds}]", h[(h["condition"] == c) & (h["dataset"] == ds)])
              for c, ds in dict.fromkeys(zip(h["condition"], h["dataset"]))
              if c in ("Fig. 2 set-up", "Fig. 2 set-up, K=4 draws", "10⁶ steps", "PyTorch init",
                       "normalised SGD B")]
    for ax, (col, title) in zip(axes, panels):
        for label, hc in curves:
            _history_band(ax, hc, col, label)
        lo, hi = PAPER_FIG2[col]
        ax.axhspan(lo * 0.97, hi * 1.03, color="k", alpha=0.15, label="paper, 10⁶ steps (MNIST)")
        _log_panel(ax, title, "step")
    _legend_below(fig, axes[-1:])
    fig.suptitle("Only B learns (forward weights frozen): 64/784-50-20-10 sigmoid, ridge γ = 0.1, σ = 0.01",
                 fontsize=11)
    figs["feedback_setup"] = fig
    cost = _feedback_cost(h, panels[:2] + panels[3:])
    if cost is not None:
        figs["feedback_cost"] = cost
    fw = f[f["part"] == "width"] if "part" in f else f.iloc[:0]
    if len(fw):
        fig, axes = _grid(plt, 2, 3.6)
        panels = ((axes[0], "signal_angle_deg_1_last", [1, 2, 3.5, 6], "signal angle, hidden layer (°)"),
                  (axes[1], "relative_error_1_last", [1.5, 2.2, 3.5, 6], "‖Wᵀ − B‖/‖W‖, hidden layer"))
        for ax, col, paper, title in panels:
            g = fw.groupby("width")[col].mean()
            ax.plot(g.index, g.values, marker="o", label=f"ours ({int(fw['cfg_steps'].iloc[0]):,} steps)")
            ax.plot([30, 100, 300, 1000], paper, "k--", marker="s", label="paper (≈, 10⁶ steps)")
            ax.set_xscale("log")
            ax.set_xlabel("hidden units (first layer)")
            ax.set_title(title, fontsize=9)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=SMALL_PT)
        fig.suptitle("Width sweep, forward weights frozen (784-W-20-10, MNIST)", fontsize=11)
        figs["feedback_width"] = fig
    return figs


def _feedback_cost(h: pd.DataFrame, panels: list[tuple[str, str]]):
    """K = 4 draws and K = 1 against the noisy passes of a sample (K a step): the budget that
    makes them equal (reports/cost.py reads them at the others too)."""
    from engine.paper import K1_LONG
    datasets = list(dict.fromkeys(h.loc[h["condition"] == K1_LONG, "dataset"]))
    runs = [(c, ds, k) for c, k in (("Fig. 2 set-up, K=4 draws", 4), (K1_LONG, 1)) for ds in datasets]
    if not runs:
        return None
    plt = _plt()
    fig, axes = _grid(plt, len(panels), 3.2)
    for ax, (col, title) in zip(axes, panels):
        for c, ds, k in runs:
            hc = h[(h["condition"] == c) & (h["dataset"] == ds)]
            _history_band(ax, hc.assign(step=hc["step"] * k), col, f"K = {k} [{ds}]",
                          ls="-" if k == 1 else "--", color=f"C{datasets.index(ds)}")
        _log_panel(ax, title, "noisy passes of a sample (steps × K)")
    _legend_below(fig, axes[-1:])
    fig.suptitle("K = 4 noise draws (10⁵ steps) against K = 1 (4·10⁵ steps) at equal noisy passes, W frozen",
                 fontsize=11)
    return fig


def fig_mlp(res: Results):
    figs = {}
    for ds in dict.fromkeys(res.history["dataset"]):
        h = res.history[res.history["dataset"] == ds]
        variant = res.final[res.final["cfg_dataset"] == ds]["data_variant"].iloc[0]
        fig = plot_curves(h, ["test_error", "signal_angle_deg", "weight_angle_deg", "sign_congruence"],
                          title=f"784-50-20-10 on {ds} ({variant}); alignment: mean over the 2 hidden layers")
        for ax in fig.axes[:1]:
            ax.set_yscale("log")
        figs[f"mlp_{ds}"] = fig
    return figs


def fig_autoencoder(res: Results, quick: bool = False, root=None):
    plt = _plt()
    import torch
    figs = {"autoencoder_loss": plot_curves(res.history, ["test_loss"],
                                            title="Autoencoder 784-200-2-200-784: clean test loss")}
    labels = list(dict.fromkeys(res.final["condition"]))
    models = {c: load_model(res.name, c, quick, root) for c in labels}
    models = {c: m for c, m in models.items() if m is not None}
    if not models:
        return figs
    fig, axes = _grid(plt, len(models), 2.6, columns=4)
    fig2, axes2 = plt.subplots(len(models) + 1, 8, figsize=(8, 1.1 * (len(models) + 1)), squeeze=False)
    for j, (c, (model, data)) in enumerate(models.items()):
        x, y = data.x_test[:2000], data.y_test[:2000]
        with torch.no_grad():
            tr = model(x, use_feedback=False)
        z = tr.hidden[1].numpy()
        ax = axes[j]
        sc = ax.scatter(z[:, 0], z[:, 1], c=y.numpy(), cmap="tab10", s=3)
        ax.set_title(c, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        side = int(math.isqrt(x.shape[1]))
        for k in range(8):
            if j == 0:
                axes2[0][k].imshow(x[k].reshape(side, side), cmap="gray")
            axes2[j + 1][k].imshow(tr.out[k].reshape(side, side).clamp(0, 1), cmap="gray")
        axes2[j + 1][0].set_ylabel(c, fontsize=SMALL_PT, rotation=0, ha="right")
    axes2[0][0].set_ylabel("input", fontsize=SMALL_PT, rotation=0, ha="right")
    for a in axes2.flat:
        a.set_xticks([])
        a.set_yticks([])
    fig.colorbar(sc, ax=axes, shrink=0.8, label="class")
    fig.suptitle("2-D bottleneck of the test set, coloured by class (seed 0)")
    fig2.suptitle("Reconstructions (seed 0)")
    figs["autoencoder_latent"] = fig
    figs["autoencoder_reconstructions"] = fig2
    return figs


def fig_conv(res: Results):
    plt = _plt()
    figs = {}
    for net in dict.fromkeys(res.history.get("net", pd.Series(["conv-small"]))):
        h = res.history[res.history["net"] == net] if "net" in res.history else res.history
        h = _with_error(h)
        n_layers = len([c for c in h.columns if c.startswith("signal_angle_deg_") and c != "signal_angle_deg_mean"])
        fig, axes = _grid(plt, 1 + n_layers, 3.2)
        for c in dict.fromkeys(h["condition"]):
            hc = h[h["condition"] == c]
            _history_band(axes[0], hc, "test_error", c)
            for i in range(n_layers):
                _history_band(axes[i + 1], hc, f"signal_angle_deg_{i + 1}", c)
        axes[0].set_ylabel("test error (%)")
        for i in range(n_layers):
            axes[i + 1].set_title(f"signal angle, hidden layer {i + 1}", fontsize=9)
            axes[i + 1].axhline(90, color="k", lw=0.5, ls=":")
        for ax in axes:
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        _legend_below(fig, axes[:1])
        fig.suptitle(f"{net}: test error and per-layer signal angle (layers 1–2 conv, 3 FC)", fontsize=11)
        figs[f"conv_{net}"] = fig
    return figs


def fig_ablations(res: Results):
    plt = _plt()
    f = res.final[res.final["status"] == "finished"]
    order = list(dict.fromkeys(res.final["condition"]))
    fig, axes = _grid(plt, 2, 0.8 + 0.3 * len(order), columns=1)
    for ax, m, name in ((axes[0], "test_error", "test error (%)"),
                        (axes[1], "signal_angle_deg_mean", "signal angle, mean of layers (°)")):
        g = f.groupby("condition")[m]
        mean, std = g.mean().reindex(order), g.std(ddof=1).reindex(order).fillna(0)
        ax.barh(range(len(order)), mean.values, xerr=std.values, color="C0")
        ax.set_yticks(range(len(order)))
        ax.set_yticklabels(order, fontsize=SMALL_PT)
        ax.invert_yaxis()
        ax.set_xlabel(name)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("Ablations (784-50-20-10, σ=0.01), mean ± std over seeds", fontsize=11)
    return {"ablations": fig,
            "ablations_curves": plot_curves(res.history, ["test_error", "signal_angle_deg"],
                                            title="Ablations over training")}


def fig_scaling(res: Results):
    plt = _plt()
    f = res.final[res.final["status"] == "finished"]
    metrics = ("test_error_tail", "signal_angle_deg_mean", "weight_angle_deg_mean")
    fig, flat = _grid(plt, 2 * len(metrics), 3.0)        # a row per metric: depth | width
    for col, (part, x) in enumerate((("depth", "depth"), ("width", "width"))):
        fp = f[f["part"] == part]
        for j, m in enumerate(metrics):
            ax = flat[2 * j + col]
            for r in dict.fromkeys(fp["rule_label"]):
                g = fp[fp["rule_label"] == r].groupby(x)[m]
                if g.mean().isna().all():
                    continue
                ax.errorbar(g.mean().index, g.mean().values, yerr=g.std(ddof=1).fillna(0).values,
                            marker="o", label=r, capsize=3)
            ax.set_xlabel(x + (" (hidden layers, width 50)" if x == "depth" else " (2 hidden layers)"))
            ax.set_ylabel(METRIC_NAMES.get(m.replace("_mean", ""), m) + (" [mean]" if "mean" in m else ""))
            if x == "width":
                ax.set_xscale("log", base=2)
            ax.grid(alpha=0.3)
    _legend_below(fig, flat)
    fig.suptitle("Depth and width scaling (test error: mean of the last 5 evaluations; mean ± std over seeds)",
                 fontsize=11)
    return {"scaling": fig}


def fig_mlp_long(res: Results):
    """§2's curves at 10× the budget, under names of their own (not §2's figures)."""
    return {name.replace("mlp_", "mlp-long_", 1): fig for name, fig in fig_mlp(res).items()}


FIGURES = {"feedback": fig_feedback, "mlp": fig_mlp, "mlp-long": fig_mlp_long, "autoencoder": fig_autoencoder,
           "conv": fig_conv, "ablations": fig_ablations, "scaling": fig_scaling}


def make_figures(res: Results, quick: bool = False, root=None) -> dict:
    fn = FIGURES.get(res.name)
    if fn is None:                       # lrsearch: a table only
        return {}
    return fn(res, quick, root) if res.name == "autoencoder" else fn(res)


def save_figures(figs: dict, out_dir: str | os.PathLike, suffix: str = "") -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figs.items():
        path = out_dir / f"{name}{suffix}.png"
        fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".png")
        os.close(fd)
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
        paths.append(path)
    return paths

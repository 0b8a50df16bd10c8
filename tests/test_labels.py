"""A run's label (engine/labels.py): what differs from the defaults, and nothing else."""

from __future__ import annotations

from engine.config import RunConfig
from engine.labels import run_label

from app.presets import preset_config


def test_run_label_says_what_differs():
    assert run_label(RunConfig(rule="np", sigma=0.01, depth=2, width=50, seed=0)) == \
        "np σ=0.01 d2 w50 lr=0.001 seed0"
    assert "σ" not in run_label(RunConfig(rule="fa"))
    assert "w50-20" in run_label(RunConfig(width=[50, 20]))
    # every setting that applies and differs from its default is named; the rest are not
    paper = run_label(preset_config("Paper MLP: NP"))
    assert all(part in paper for part in ("ridge B", "warm-up 1,000", "paper init", " sgd "))
    assert paper != run_label(RunConfig(rule="np"))
    assert run_label(RunConfig(rule="np", noise_draws=4, ridge_gamma=0.5)) == \
        "np σ=0.01 d2 w50 lr=0.001 K=4 seed0"             # ridge_gamma does not apply to sgd B
    assert "ridge_gamma=0.5" in run_label(RunConfig(rule="np", feedback_mode="ridge", ridge_gamma=0.5))


def test_a_conv_nets_label_names_its_model_not_an_mlp_shape():
    conv = run_label(preset_config("4. Conv nets"))
    assert " conv-small " in conv and " d2 " not in conv and "w50-20" not in conv
    assert "model=" not in conv
    # a fully connected net keeps its shape
    assert " d2 w50-20 " in run_label(preset_config("3. NP trains the network"))

"""The metric definitions on inputs whose answer is known by hand."""

import math

import pytest
import torch

from engine.metrics import (angle_deg, mean_rowwise_angle_deg, relative_error, sign_congruence,
                            snr_db)


def test_angles_of_known_vectors():
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert angle_deg(e1, e2).item() == pytest.approx(90.0)
    assert angle_deg(e1, 3 * e1).item() == pytest.approx(0.0, abs=1e-3)
    assert angle_deg(e1, torch.tensor([1.0, 1.0])).item() == pytest.approx(45.0)
    assert angle_deg(torch.eye(2), -torch.eye(2)).item() == pytest.approx(180.0)   # matrices, flattened


def test_rowwise_angle_is_the_batch_mean_and_is_not_folded():
    a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])        # 0° and 180°: mean 90°, folded would be 0°
    assert mean_rowwise_angle_deg(a, b).item() == pytest.approx(90.0)
    c = torch.tensor([[1.0, 1.0], [0.0, 1.0]])         # 45° and 90°
    assert mean_rowwise_angle_deg(a, c).item() == pytest.approx(67.5)


def test_relative_error_and_sign_congruence():
    wt = torch.tensor([[1.0, -2.0], [3.0, -4.0]])
    b = torch.tensor([[1.0, 2.0], [3.0, -4.0]])
    assert relative_error(b, wt).item() == pytest.approx(4.0 / math.sqrt(30.0))
    assert sign_congruence(b, wt).item() == pytest.approx(0.75)
    assert relative_error(wt, wt).item() == 0.0


def test_snr_in_decibels():
    truth = torch.tensor([3.0, 4.0])                    # power 25
    assert snr_db(truth + torch.tensor([1.0, 0.0]), truth).item() == pytest.approx(10 * math.log10(25))


def test_every_recorded_metric_is_named_once_in_the_registry():
    from app.curves import LAYER_PLOTS
    from engine import RunConfig, Trainer
    from engine.metric_names import METRICS
    from reports.figures import METRIC_NAMES

    t = Trainer(RunConfig(rule="np", steps=10, metric_interval=5))
    while (record := t.step()) is None:
        pass
    assert set(record["layers"][0]) == {m for m, info in METRICS.items() if info.per_layer}
    for key, title, good, unit in LAYER_PLOTS:             # the dashboard's titles are the registry's
        assert (title, unit) == (METRICS[key].title, METRICS[key].unit) and METRICS[key].good in good
    assert all(METRICS[k].notation in METRIC_NAMES[k] for k in METRICS)


def test_a_vanishing_vector_has_no_angle_and_a_tiny_one_keeps_its_own():
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    assert math.isnan(angle_deg(torch.zeros(2), e1).item())             # undefined, not 90°
    tiny = 1e-30                                                        # squares underflow float32
    assert angle_deg(tiny * e1, tiny * e2).item() == pytest.approx(45.0, abs=1e-3)
    rows_a = torch.stack([e1, torch.zeros(2), tiny * e2])
    rows_b = torch.stack([e2, e1, tiny * e2])
    assert mean_rowwise_angle_deg(rows_a, rows_b).item() == pytest.approx(22.5, abs=1e-3)
    assert math.isnan(mean_rowwise_angle_deg(torch.zeros(3, 2), rows_b).item())


def test_an_error_that_vanishes_is_reported_undefined_not_as_90_degrees():
    """Output weights at zero send no error back: backprop's signal angle to itself has no
    value (NaN: a gap in the curve), where a clamped cosine used to report 90° ("unrelated")."""
    from engine import RunConfig, Trainer
    t = Trainer(RunConfig(rule="bp", steps=10, metric_interval=10, freeze_forward=True))
    with torch.no_grad():
        t.model.layers[-1].weight.zero_()
    record = None
    while record is None:
        record = t.step()
    assert all(math.isnan(layer["signal_angle_deg"]) for layer in record["layers"]), record["layers"]

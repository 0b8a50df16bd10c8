"""A population's curves without a browser: the band columns (the members' lowest and highest
around their mean) as the curves get them from records, the bands' renderers, and what the page
says about a population (its run label, the heatmaps' member, the network picture's mean). A run
of one seed draws as it did before populations: no band columns, no band renderers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from bokeh.models import VArea

from engine.config import RunConfig
from engine.data.registry import load_dataset
from engine.errors import ConfigError
from engine.labels import run_label
from engine.members import split
from engine.trainer import Trainer

from app.curves import (BAND_NOTE, CurvePlots, band_columns, columns_for, flat_row, fold_members,
                        rows_to_columns)
from app.live_plots import heat_heading, member_note
from app.network_view import NetworkView

NAN = math.nan


def member(k: int, loss: float, acc: float, angles: list[float], test=(NAN, NAN)) -> dict:
    return {"member": k, "seed": 10 + k, "train_loss": loss, "train_accuracy": acc,
            "test_loss": test[0], "test_accuracy": test[1],
            "layers": [{"weight_angle_deg": a, "signal_angle_deg": a + 1} for a in angles]}


def record(step: int, members: list[dict]) -> dict:
    """A trainer's record of a population: the members' mean on top, the members beneath
    (engine/trainer.py `_record`)."""
    def mean(values):
        defined = [v for v in values if not math.isnan(v)]
        return sum(defined) / len(defined) if defined else NAN
    top = {k: mean([m[k] for m in members]) for k in ("train_loss", "train_accuracy", "test_loss", "test_accuracy")}
    layers = [{name: mean([m["layers"][i][name] for m in members]) for name in members[0]["layers"][i]}
              for i in range(len(members[0]["layers"]))]
    return {"step": step, "sigma": 0.01, **top, "layers": layers, "members": members}


POPULATION = [record(10, [member(0, 1.0, 0.2, [80.0, 70.0]), member(1, 3.0, 0.4, [60.0, NAN]),
                          member(2, 2.0, 0.3, [70.0, 50.0], test=(0.5, 0.9))]),
              record(20, [member(0, 0.5, 0.6, [40.0, 30.0]), member(1, 0.7, 0.5, [50.0, NAN]),
                          member(2, 0.9, 0.7, [45.0, 20.0])])]


# ------------------------------------------------------------------------- band columns
def test_band_columns_are_the_members_lowest_and_highest_around_their_mean():
    cols = ["step", "train_loss", "weight_angle_deg_1", "weight_angle_deg_2"]
    out = rows_to_columns([flat_row(r) for r in POPULATION], cols + band_columns(cols))
    np.testing.assert_allclose(out["train_loss"], [2.0, 0.7])             # the record's mean
    np.testing.assert_allclose(out["train_loss_min"], [1.0, 0.5])
    np.testing.assert_allclose(out["train_loss_max"], [3.0, 0.9])
    np.testing.assert_allclose(out["weight_angle_deg_1_min"], [60.0, 40.0])
    np.testing.assert_allclose(out["weight_angle_deg_1_max"], [80.0, 50.0])
    # A member without a value (NaN) is left out, as the engine's mean leaves it out.
    np.testing.assert_allclose(out["weight_angle_deg_2"], [60.0, 25.0])
    np.testing.assert_allclose(out["weight_angle_deg_2_min"], [50.0, 20.0])
    np.testing.assert_allclose(out["weight_angle_deg_2_max"], [70.0, 30.0])
    assert band_columns(["step", "train_loss"]) == ["train_loss_min", "train_loss_max"]


def test_a_band_is_nan_only_where_no_member_has_a_value():
    out = rows_to_columns([flat_row(r) for r in POPULATION], ["step", "test_loss", "test_loss_min",
                                                              "test_loss_max"])
    np.testing.assert_allclose(out["test_loss_min"][:1], [0.5])            # one member evaluated
    assert math.isnan(out["test_loss_min"][1]) and math.isnan(out["test_loss_max"][1])


def test_a_run_of_one_seed_gets_exactly_the_columns_it_had():
    single = [{"step": 10, "train_loss": 1.0, "train_accuracy": None, "layers": [{"weight_angle_deg": 80.0}]},
              {"step": 20, "train_loss": 0.5, "train_accuracy": 0.5, "layers": [{"weight_angle_deg": 70.0}]}]
    rows = [flat_row(r) for r in single]
    assert all("members" not in row for row in rows)
    cols = columns_for(1)
    out = rows_to_columns(rows, cols)
    assert list(out) == cols and not any(c.endswith(("_min", "_max")) for c in out)
    np.testing.assert_allclose(out["train_loss"], [1.0, 0.5])
    assert math.isnan(out["train_accuracy"][0]) and math.isnan(out["sign_congruence_1"][0])
    # Band columns asked of rows without members: NaN, never the line itself.
    assert np.isnan(rows_to_columns(rows, ["train_loss", "train_loss_min"])["train_loss_min"]).all()


def test_a_saved_population_one_row_per_member_is_folded_into_one_row_per_step():
    # engine/stream.py member_rows: what a population's metrics.parquet holds, member by member.
    saved = [{"step": 10, "member": k, "seed": 10 + k, "train_loss": v, "test_loss": NAN}
             for k, v in enumerate([1.0, 3.0, NAN])]
    saved += [{"step": 20, "member": k, "seed": 10 + k, "train_loss": v, "test_loss": t}
              for k, (v, t) in enumerate([(0.5, 0.2), (0.7, 0.4), (0.9, 0.6)])]
    rows = fold_members(saved, ["step", "train_loss", "test_loss"])
    assert [r["step"] for r in rows] == [10, 20]
    out = rows_to_columns(rows, ["step", "train_loss", "train_loss_min", "train_loss_max", "test_loss"])
    np.testing.assert_allclose(out["train_loss"], [2.0, 0.7])
    np.testing.assert_allclose(out["train_loss_min"], [1.0, 0.5])
    np.testing.assert_allclose(out["train_loss_max"], [3.0, 0.9])
    assert math.isnan(out["test_loss"][0]) and out["test_loss"][1] == pytest.approx(0.4)


# ------------------------------------------------------------------------- band renderers
def bands(plots: CurvePlots, key) -> list:
    return [r for f in plots.figures.values() for r in f.renderers if r.name == f"band-{key}"]


def test_a_population_gets_a_band_under_every_line_in_its_colour_and_a_single_run_none():
    plots = CurvePlots()
    counts = [len(f.renderers) for f in plots.figures.values()]
    plots.add_run("one", "a single run", 2)
    assert bands(plots, "one") == [] and not plots.has_population
    assert [len(f.renderers) for f in plots.figures.values()] == counts   # it took the spare
    assert not any(c.endswith("_min") for c in plots._runs["one"]["curves"].data)

    color = plots.add_run("pop", "a population", 2, members=3)
    assert plots.has_population and plots.members("pop") == 3
    # Its band columns at once, its bands once it has points, a figure at a time.
    assert "train_loss_min" in plots._runs["pop"]["curves"].data
    assert not plots.bands_pending and not plots.build_bands() and bands(plots, "pop") == []
    plots.stream("pop", [flat_row(r) for r in POPULATION])
    added = []
    while plots.bands_pending:
        before = [len(f.renderers) for f in plots.figures.values()]
        assert plots.build_bands()
        added.append(sum(b != a for b, a in zip(before, [len(f.renderers) for f in plots.figures.values()])))
    assert added == [1] * len(plots.figures) and not plots.build_bands()
    drawn = bands(plots, "pop")
    # loss and accuracy: train and test; the six per-layer plots: one per layer
    assert len(drawn) == 2 * 2 + 6 * 2
    assert all(isinstance(r.glyph, VArea) and r.glyph.fill_color == color for r in drawn)
    curves, evals = plots._runs["pop"]["curves"].data, plots._runs["pop"]["evals"].data
    np.testing.assert_allclose(curves["train_loss_max"], [3.0, 0.9])
    np.testing.assert_allclose(evals["test_loss_min"], [0.5])
    for r in drawn:                   # each band reads columns its source has
        assert {r.glyph.y1, r.glyph.y2} <= set(r.data_source.data)
    plots.fit_y_ranges()              # the log loss axis fits the band, not just the mean
    assert plots.figures["loss"].y_range.end >= 3.0

    plots.set_visible("pop", False)
    assert not any(r.visible for r in drawn)
    plots.add_run("later", "hidden before its bands", 1, members=2)
    plots.set_visible("later", False)
    plots.stream("later", [flat_row(r) for r in POPULATION])
    assert plots.build_bands(whole=True) and not any(r.visible for r in bands(plots, "later"))
    plots.remove_run("pop")
    plots.remove_run("later")
    assert bands(plots, "pop") == bands(plots, "later") == [] and not plots.has_population


def test_a_thinned_population_is_resent_with_its_bands():
    plots = CurvePlots()
    plots.add_run("pop", "a population", 2, members=3)
    plots.replace("pop", [flat_row(r) for r in POPULATION[1:]])
    assert plots.bands_pending
    np.testing.assert_allclose(plots._runs["pop"]["curves"].data["train_loss_min"], [0.5])


# ------------------------------------------------------------------------- what the page says
def test_a_population_is_named_with_its_seeds():
    label = run_label(RunConfig(seeds=4, seed=3))
    assert label.endswith("×4 seeds (3–6)") and "seeds=4" not in label and "seed3" not in label
    assert run_label(RunConfig(seed=3)).endswith(" seed3")


def test_the_heatmaps_name_the_member_they_show_and_the_picture_says_it_shows_the_mean():
    assert member_note(RunConfig()) == ""
    assert "member 0 (seed 5) of 4 seeds" in heat_heading("layer 2 ← output (6×10)"
                                                          + member_note(RunConfig(seed=5, seeds=4)))
    assert member_note(RunConfig(seed=5, seeds=2, sigma=[0.01, 0.1])) == ", member 0 (seed 5, σ=0.01) of 4 members"
    view = NetworkView()
    view.show_config(RunConfig(depth=2, width=[8, 6]))
    view.show_record(POPULATION[0], members=3)
    assert "mean of the run's 3 seeds" in view.pane.object.replace("&#x27;", "'")
    view.show_record(POPULATION[0], members=1)
    assert "seeds" not in view.pane.object


def test_the_captions_say_what_a_band_is_while_a_population_is_shown():
    from app.live_plots import LivePlots
    from engine.host.runner import SessionRuns

    plots = LivePlots(SessionRuns(), served=False)
    plots.note_bands()
    assert BAND_NOTE not in plots._curve_captions["loss"].object
    plots.curves.add_run("pop", "a population", 2, members=2)
    plots.note_bands()
    assert all("lowest to the highest" in pane.object for pane in plots._curve_captions.values())
    plots.curves.remove_run("pop")
    plots.note_bands()
    assert "lowest" not in plots._curve_captions["loss"].object


# ------------------------------------------------------------------------- live changes
def test_a_live_sigma_and_lr_change_reaches_every_member():
    """The dashboard sends a live change once, to the run's one Trainer: member k still takes
    exactly the steps of the single run of seed + k given the same change at the same step."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)          # batched and single products agree to rounding
    try:
        data = load_dataset("digits")
        data = dataclasses.replace(data, x_train=data.x_train.double(), x_test=data.x_test.double())
        cfg = dict(rule="np", dataset="digits", depth=1, width=8, batch_size=8, steps=12,
                   metric_interval=4, eval_interval=8, device="cpu", seed=7)

        def train(**overrides):
            trainer = Trainer(RunConfig(**{**cfg, **overrides}), dataset=data)
            for step in range(12):
                if step == 6:
                    trainer.set(sigma=0.05, lr=0.01)
                trainer.step()
            return trainer

        population = train(seeds=2)
        for k in range(2):
            single = train(seed=7 + k)
            for p, s in zip(population.model.parameters(), single.model.parameters()):
                assert torch.allclose(split(p.detach(), 2)[k], s.detach(), rtol=1e-9, atol=1e-12)
    finally:
        torch.set_default_dtype(before)


# ------------------------------------------------------------------------- the dashboard
TINY = dict(dataset="digits", depth=2, width=[8, 6], steps=200, metric_interval=10, eval_interval=100,
            device="cpu")


def test_a_population_started_on_the_dashboard_draws_its_bands_and_says_its_seeds():
    from app.dashboard import SLOW_EVERY, Dashboard
    from app.run_status import display_name

    dash = Dashboard(sync_url=False)
    try:
        dash.state.set_config(RunConfig(**TINY, seeds=4))
        run = dash._on_start()
        assert run.join(60) and run.status == "finished"
        for _ in range(SLOW_EVERY * (len(dash.curves.figures) + 1)):    # a figure's bands per slow pull
            dash._pull()
        drawn = bands(dash.curves, run.id)
        assert drawn and all(len(r.data_source.data["step"]) for r in drawn)
        curves = dash.curves._runs[run.id]["curves"].data
        assert len(curves["step"]) == TINY["steps"] // TINY["metric_interval"]
        assert (curves["train_loss_min"] <= curves["train_loss"]).all()
        assert (curves["train_loss"] <= curves["train_loss_max"]).all()
        assert display_name(run).endswith("×4 seeds (0–3)")
        assert "×4 seeds" in dash.run_status.run_legend.object
        dash.run_status.refresh()
        assert "×4 seeds (0–3)" in dash.status.object and "mean of 4 seeds)" in dash.status.object
        assert "member 0 (seed 0) of 4 seeds" in dash.heat_heading.object
        assert "lowest to the highest" in dash.plots._curve_captions["loss"].object
    finally:
        dash.close()


def test_a_saved_population_loads_as_one_line_per_step_with_its_band(tmp_path, monkeypatch):
    from app.dashboard import Dashboard
    from app.library import SavedRun
    from engine.runs.writer import RunWriter

    trainer = Trainer(RunConfig(**TINY, seeds=3))
    writer = RunWriter(tmp_path / "runs", trainer)
    trainer.run()
    writer.close()
    monkeypatch.setenv("CREDITLAB_RUNS", str(tmp_path / "runs"))
    dash = Dashboard(sync_url=False)
    try:
        dash.compare.refresh_saved()
        dash.saved_select.value = str(writer.path)
        dash._on_load_saved()
        dash.curves.build_bands(whole=True)
        saved = SavedRun(writer.path)
        assert len(saved.rows()) == 3 * TINY["steps"] // TINY["metric_interval"]     # member by member
        assert dash.curves.length(saved.id) == TINY["steps"] // TINY["metric_interval"]
        data = dash.curves._runs[saved.id]["curves"].data
        assert (data["train_loss_min"] < data["train_loss_max"]).all()
        assert bands(dash.curves, saved.id)
        assert "×3 seeds (0–2)" in dash.run_status.run_legend.object
    finally:
        dash.close()


# ------------------------------------------------ several values of σ (or lr, feedback_lr)
def test_a_record_of_a_sigma_population_splits_into_each_sigmas_mean_and_members():
    from app.setting_groups import curve_sets, set_label, split_record

    cfg = RunConfig(**TINY, seeds=2, sigma=[0.001, 0.1])
    trainer = Trainer(cfg)
    record = trainer.run(steps=10) and trainer._last_record
    sets = curve_sets(7, cfg)
    assert sets == [((7, 0), {"sigma": 0.001}, 2), ((7, 1), {"sigma": 0.1}, 2)]
    parts = split_record(record, cfg)
    for i, part in enumerate(parts):
        group = record["members"][2 * i:2 * i + 2]
        assert part["members"] == group and part["sigma"] == cfg.values_of("sigma")[i]
        assert part["train_loss"] == pytest.approx(sum(m["train_loss"] for m in group) / 2)
        assert part["layers"][0]["signal_angle_deg"] == pytest.approx(
            sum(m["layers"][0]["signal_angle_deg"] for m in group) / 2)
        assert part["step"] == record["step"]
    label = run_label(cfg)
    assert "σ=0.001,0.1" in label and set_label(label, cfg, {"sigma": 0.1}) == label.replace("σ=0.001,0.1", "σ=0.1")
    assert curve_sets(7, RunConfig(**TINY, seeds=3)) == [(7, None, 3)]
    both = RunConfig(**TINY, sigma=[0.001, 0.1], lr=[1e-3, 1e-2], feedback_lr=[1.0, 0.5])
    assert [group for _, group, _ in curve_sets(7, both)][1:3] == [
        {"sigma": 0.001, "lr": 1e-3, "feedback_lr": 0.5}, {"sigma": 0.001, "lr": 1e-2, "feedback_lr": 1.0}]
    label = run_label(both)
    assert "lr=0.001,0.01" in label and "η_B=1,0.5" in label and "per σ×lr×η_B" in label
    narrowed = set_label(label, both, {"sigma": 0.1, "lr": 1e-2, "feedback_lr": 0.5})
    assert "σ=0.1 " in narrowed and "lr=0.01 " in narrowed and "η_B=0.5 " in narrowed


@pytest.mark.parametrize("name, values, written", [("sigma", [0.001, 0.1], "σ"), ("lr", [0.001, 0.1], "lr")])
def test_several_values_started_on_the_dashboard_draw_a_curve_set_per_value(name, values, written):
    from app.dashboard import SLOW_EVERY, Dashboard

    dash = Dashboard(sync_url=False)
    try:
        dash.state.set_config(RunConfig(**TINY, seeds=2))
        setattr(dash.state, name, values)               # as the box reads "0.001,0.1"
        run = dash._on_start()
        assert run.join(60) and run.status == "finished"
        for _ in range(SLOW_EVERY * (len(dash.curves.figures) + 1)):
            dash._pull()
        keys = [(run.id, 0), (run.id, 1)]
        assert [k for k in dash.curves._runs if k in keys] == keys
        colors = {dash.curves.color(k) for k in keys}
        assert len(colors) == 2                         # each σ its own colour
        for i, key in enumerate(keys):
            data = dash.curves._runs[key]["curves"].data
            assert len(data["step"]) == TINY["steps"] // TINY["metric_interval"]
            assert (data["train_loss_min"] <= data["train_loss"]).all()
            assert bands(dash.curves, key)
        legend = dash.run_status.run_legend.object
        assert f"{written}=0.001 " in legend and f"{written}=0.1 " in legend and f"per {written}" in legend
        dash._forget(run)
        assert not any(k in dash.curves._runs for k in keys)
    finally:
        dash.close()


def test_a_live_sigma_list_is_refused_in_one_line_on_a_running_run():
    trainer = Trainer(RunConfig(**TINY))
    with pytest.raises(ConfigError, match=r"^sigma=0.001,0.1 cannot be set during a run: several values train"):
        trainer.set(sigma=[0.001, 0.1])


def test_a_saved_sigma_population_loads_as_a_curve_set_per_sigma(tmp_path, monkeypatch):
    from app.dashboard import Dashboard
    from engine.runs.writer import RunWriter

    trainer = Trainer(RunConfig(**TINY, seeds=2, sigma=[0.001, 0.1]))
    writer = RunWriter(tmp_path / "runs", trainer)
    trainer.run()
    writer.close()
    monkeypatch.setenv("CREDITLAB_RUNS", str(tmp_path / "runs"))
    dash = Dashboard(sync_url=False)
    try:
        dash.compare.refresh_saved()
        dash.saved_select.value = str(writer.path)
        dash._on_load_saved()
        dash.curves.build_bands(whole=True)
        saved_keys = [k for k in dash.curves._runs if isinstance(k, tuple)]
        assert len(saved_keys) == 2
        for key in saved_keys:
            data = dash.curves._runs[key]["curves"].data
            assert len(data["step"]) == TINY["steps"] // TINY["metric_interval"]
            assert (data["train_loss_min"] <= data["train_loss_max"]).all()
    finally:
        dash.close()


def test_the_member_command_makes_the_records_carry_that_members_matrices():
    from engine.control import Control, drive

    trainer = Trainer(RunConfig(**{**TINY, "steps": 20}, seeds=3))
    got = []
    trainer.subscribe(lambda record: got.append(record["matrices"]), matrices=True)
    control = Control()
    control.commands.put(("member", 2))
    drive(trainer, control, steps=10)
    assert got[-1][0]["member"] == 2
    for shown, mine in zip(got[-1], trainer.matrices(2)):
        assert np.array_equal(shown["B"], mine["B"]) and np.array_equal(shown["WT"], mine["WT"])
    assert not np.array_equal(got[-1][0]["B"], trainer.matrices(0)[0]["B"])


def test_the_heatmap_member_menu_shows_the_chosen_member_and_its_start():
    from conftest import wait_until

    from app.dashboard import Dashboard

    dash = Dashboard(sync_url=False)
    try:
        dash.state.set_config(RunConfig(**{**TINY, "steps": 1_000_000}, seeds=3))
        run = dash._on_start()
        menu = dash.plots.member_select
        assert menu.visible and list(menu.options.values()) == [0, 1, 2]
        menu.value = 2
        wait_until(lambda: (run.buffer.latest_matrices()[1] or [{}])[0].get("member") == 2, 60,
             "the run did not publish member 2's matrices")
        dash.plots.refresh_heatmaps(force=True)
        assert "member 2 (seed 2) of 3 seeds" in dash.heat_heading.object
        assert run.first_members is not None and len(run.first_members) == 3
        run.stop()
        assert run.join(60)
        dash._on_reset()
        assert not menu.visible
    finally:
        dash.close()

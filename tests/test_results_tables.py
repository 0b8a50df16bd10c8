"""docs/results.md says what the committed tables say: every <!-- TABLE:name --> block's rows are
the rows reports/tables.py makes from results/<name>/final.parquet (":claims" blocks: the paired
tests of that experiment's claims); the forward lrs pinned in engine/paper.py are the ones the
committed lr search chose; and the statistics and the validation split do what they say."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine import experiments as ex
from engine import paper, paper_nets
from engine.data.registry import load_dataset
from engine.data.validation import carve, held_out, parent_name
from reports import seeds, tables

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"<!-- TABLE:([\w-]+)(?::(\w+))? -->\n(.*?)<!-- /TABLE -->", re.S)


def _rows(markdown: str) -> list[list[str]]:
    """The body rows of the first Markdown table in `markdown`, as lists of stripped cells."""
    lines = [ln for ln in markdown.splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines[2:]]


BLOCKS = BLOCK.findall((ROOT / "docs" / "results.md").read_text(encoding="utf-8"))


def test_the_report_has_its_tables():
    names = {(n, k or "table") for n, k, _ in BLOCKS}
    assert {("mlp", "table"), ("mlp", "claims"), ("mlp", "baselines"), ("ablations", "table"),
            ("ablations", "claims"), ("lrsearch", "table"), ("autoencoder", "table"), ("autoencoder", "claims"),
            ("scaling-lrsearch", "table"), ("scaling", "table"), ("scaling", "claims"), ("conv", "table"),
            ("conv", "cost"), ("conv", "cost_step"), ("mlp-long", "table"), ("mlp-long", "claims"),
            ("autoencoder-lrsearch", "table"), ("feedback", "table"), ("feedback", "cost")} <= names


@pytest.mark.parametrize("name,kind,body", BLOCKS, ids=[f"{n}:{k or 'table'}" for n, k, _ in BLOCKS])
def test_every_table_row_of_the_report_matches_its_parquet(name, kind, body):
    res = ex.load_results(name)
    want = _rows(tables.block(res, kind or "table"))
    got = _rows(body)
    assert got == want, f"docs/results.md's {name} {kind or 'table'} is not what results/{name} gives"


def test_the_pinned_lrs_are_the_ones_the_search_chose():
    chosen = tables.chosen_lrs(ex.load_results("lrsearch").final)
    assert chosen == paper.LR
    # and every row of §2 (at both budgets) and §5 runs at its rule's chosen lr
    for name in ("mlp", "mlp-long", "ablations"):
        for c in ex.EXPERIMENTS[name].build(False):
            assert c.cfg.lr == paper.LR[c.cfg.dataset, c.columns["rule_label"]], (name, c.label)


def test_the_pinned_scaling_lrs_are_the_ones_its_search_chose():
    assert tables.chosen_lrs(ex.load_results("scaling-lrsearch").final) == paper_nets.SCALING_LR
    for c in ex.EXPERIMENTS["scaling"].build(False):
        assert c.cfg.lr == paper_nets.SCALING_LR["fashion-mnist", c.label], c.label


def test_the_pinned_autoencoder_lrs_are_the_ones_its_search_chose():
    final = ex.load_results("autoencoder-lrsearch").final
    assert tables.search_metric(final) == "test_loss_tail"          # an autoencoder has no error
    assert tables.chosen_lrs(final, "test_loss_tail") == paper_nets.AE_LR
    for c in ex.EXPERIMENTS["autoencoder"].build(False):     # a noise-only row at its rule's lr
        assert c.cfg.lr == paper_nets.AE_LR["fashion-mnist", c.label.split(" + ")[0]], c.label


def test_the_lr_search_scored_on_validation_data_only():
    final = ex.load_results("lrsearch").final
    assert set(final["cfg_dataset"]) == {"fashion-mnist-val", "mnist-val"}
    assert set(final["lr"]) == set(paper.LR_GRID)
    final = ex.load_results("scaling-lrsearch").final
    assert set(final["cfg_dataset"]) == {"fashion-mnist-val"}
    assert set(final["lr"]) == set(paper_nets.SCALING_LR_GRID)
    final = ex.load_results("autoencoder-lrsearch").final
    assert set(final["cfg_dataset"]) == {"fashion-mnist-val"}
    assert set(final["lr"]) == set(paper_nets.AE_LR_GRID)


def test_every_claim_names_conditions_of_its_experiment():
    for family, claims in tables.CLAIMS.items():
        labels = {c.label for c in ex.EXPERIMENTS[family.split(":")[0]].build(False)}
        for text, a, b, _ in claims:
            assert {a, b} <= labels, (family, text)


def test_a_claim_family_is_tested_apart_and_a_loss_has_no_unit():
    rng = np.random.default_rng(1)
    base = rng.normal(10, 1, 8)
    f = pd.DataFrame({"condition": ["NP"] * 8 + ["BP"] * 8 + ["FA"] * 8, "seed": list(range(8)) * 3,
                      "status": "finished", "cfg_dataset": "d",
                      "test_loss_tail": np.concatenate([base + 1, base, base + 5 + rng.normal(0, 0.1, 8)]),
                      "signal_angle_deg_mean": [40.0] * 8 + [0.0] * 8 + [70.0] * 8})
    res = ex.Results("autoencoder", f, pd.DataFrame())
    out = tables.claims(res)
    # only the claims whose conditions ran
    assert list(out["claim"]) == ["NP vs BP", "NP vs FA", "signal angle: NP vs FA"]
    diffs = out["A − B"].tolist()
    assert diffs[0] == "+1.00 ± 0.00" and re.fullmatch(r"-4\.\d\d ± 0\.\d\d", diffs[1]) and diffs[2] == "-30.00° ± 0.00"
    assert out["verdict"].tolist() == ["A > B", "A < B", "A < B"]
    assert tables.families("mlp") == ["mlp", "mlp:baselines"] and tables.families("scaling-lrsearch") == []
    assert tables.claims(res, family="mlp:baselines").empty


# ----------------------------------------------------------------------------- the statistics
def test_confidence_interval_is_students_t():
    v = pd.Series([1.0, 2.0, 3.0])
    assert seeds.ci_halfwidth(v) == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert seeds.ci_halfwidth(pd.Series([5.0])) == 0.0
    f = pd.DataFrame({"condition": ["a"] * 3, "status": "finished", "x": [1.0, 2.0, 3.0],
                      "wall_seconds": [1.0, 1.0, 1.5]})
    out = tables.summarize(f, metrics=["x"], by=["condition"], spread="ci", wall=True)
    assert out.loc[0, "x"] == "2.00 ± 2.48" and out.loc[0, "wall_s"] == "4" and out.loc[0, "seeds"] == 3


def test_paired_test_and_holm():
    rng = np.random.default_rng(0)
    base = rng.normal(10, 1, 8)
    f = pd.DataFrame({"condition": ["a"] * 8 + ["b"] * 8, "seed": list(range(8)) * 2, "status": "finished",
                      "m": np.concatenate([base + 0.5 + rng.normal(0, 0.05, 8), base])})
    r = tables.paired(f, "a", "b", "m")
    assert r["n"] == 8 and r["diff"] == pytest.approx(0.5, abs=0.05) and r["p"] < 1e-6
    same = tables.paired(f.assign(m=np.concatenate([base, base])), "a", "b", "m")
    assert same["diff"] == 0 and same["p"] == 1.0
    # a seed that diverged in one condition drops out of the pairs
    r7 = tables.paired(f.assign(status=["finished"] * 15 + ["diverged"]), "a", "b", "m")
    assert r7["n"] == 7
    assert tables.holm([0.01, 0.04, 0.03, math.nan]) == pytest.approx([0.03, 0.06, 0.06, math.nan], nan_ok=True)


def test_chosen_lr_skips_a_diverged_setting():
    f = pd.DataFrame({"cfg_dataset": ["x-val"] * 4, "rule_label": ["R"] * 4, "lr": [0.1, 0.1, 0.3, 0.3],
                      "status": ["finished", "finished", "finished", "diverged"],
                      "test_error_tail": [5.0, 5.0, 1.0, math.nan]})
    assert tables.chosen_lrs(f) == {("x", "R"): 0.1}


# ----------------------------------------------------------------------------- the validation split
def test_validation_split_is_a_fixed_stratified_part_of_the_training_set():
    d = load_dataset("digits")
    v = carve(d)
    y = d.y_train.numpy()
    idx = held_out(y)
    assert len(v.y_test) == len(idx) and len(v.y_train) + len(v.y_test) == len(y)
    assert np.array_equal(idx, held_out(y)), "the split must not depend on anything but the data"
    # every class gives its sixth
    for c in np.unique(y):
        assert (y[idx] == c).sum() == round((y == c).sum() / 6)
    # the held-out images are training images, none of them also trained on, none from the test set
    train_rows = {r.tobytes() for r in v.x_train.numpy()}
    assert not any(r.tobytes() in train_rows for r in v.x_test.numpy()
                   if (d.x_train.numpy() == r).all(axis=1).sum() == 1)
    assert torch_equal(v.x_test, d.x_train[idx])
    assert v.name == "digits-val" and parent_name(v.name) == "digits" and parent_name("mnist") == "mnist"


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_the_long_mlp_runs_are_sections_2s_at_ten_times_its_forward_steps():
    """Only the budget differs from §2's run of the same rule: 10× the forward steps, the same
    1,000 warm-up steps, 20 evaluations (so the last 5 span the last fifth)."""
    short = {c.label: c.cfg for c in ex.EXPERIMENTS["mlp"].build(False) if c.cfg.dataset == "fashion-mnist"}
    long = ex.EXPERIMENTS["mlp-long"].build(False)
    assert [c.label for c in long] == ["BP", "FA", "NP, paper's (ridge B)", "NP, lab's (LMS B + CV)", "SG-oracle"]
    for c in long:
        a, b = short[c.label].to_dict(), c.cfg.to_dict()
        assert {k for k in a if a[k] != b[k]} == {"steps", "metric_interval", "eval_interval"}, c.label
        assert b["steps"] - b["warmup_steps"] == 10 * (a["steps"] - a["warmup_steps"]) == 100_000
        assert b["warmup_steps"] == a["warmup_steps"] and b["eval_interval"] * 20 == 100_000
    final = ex.load_results("mlp-long").final
    assert set(final["seed"]) == set(range(ex.EXPERIMENTS["mlp-long"].seeds))
    assert (final["tail_evals"] == ex.TAIL_EVALS).all()

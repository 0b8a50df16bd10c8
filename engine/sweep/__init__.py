"""Hyper-parameter sweeps: a grid × seeded random search × N seeds, run on Dask or in-process.

A sweep is described by a TOML (or YAML) file, by command-line flags, or both (flags win):

    [sweep]                     # the sweep itself
    name = "np-digits"          # the sweep id is "<name>-<hash of the search space and seed>"
    seed = 0                    # makes the sampled configurations reproducible
    samples = 24                # random draws per grid point
    seeds_per_point = 2         # training seeds per configuration: base.seed, base.seed+1, …
    metric = "test_accuracy"    # how the summary ranks configurations …
    mode = "max"                # … and in which direction
    [base]                      # any RunConfig field, shared by every trial
    dataset = "digits"
    [grid]                      # cartesian product
    rule = ["np", "fa", "bp"]
    [random]                    # sampled per grid point: log_uniform, uniform, int_uniform, choice
    sigma = { log_uniform = [1e-4, 1e-1] }

Instead of one [grid]/[random] pair a file may hold several `[[search]]` tables (each with its own
`grid`, `random`, optional `samples` and `base` overrides), e.g. σ, lr and feedback_lr for NP but
only lr for BP and FA. Random draws depend on (sweep seed, sample index, parameter name) only, so
the k-th draw of `lr` is the same in every search and at every grid point: searches are paired.

Every trial is a run like any other (engine/runs/writer.py: runs/<run id>/config.json, metrics.parquet,
summary.json, checkpoint.pt) plus a `sweep.json` tag (sweep id, trial id, sample, search). A
trial's id is a stable hash of its full RunConfig; rerunning a sweep skips trials whose run folder
says finished, diverged or failed, so an interrupted sweep resumes where it stopped. The table of
finished trials is `runs/sweeps/<sweep id>/trials.parquet`, rewritten atomically as trials finish,
next to `sweep.json` (the spec, the trial count and the varied parameters).

Packing: the trials to run that differ only in consecutive seeds (base.seed, base.seed+1, …),
and in σ, lr or feedback_lr where they hold every combination of their values over the same
seeds, train as one population (RunConfig.seeds and lists; one task, one batched step), and each is still saved
as its own run folder and row, as if it had run alone (a member that diverges ends there, as
its run would, and the others go on); a population that fails runs its trials again one by one.
`pack=False` (`--no-pack`) runs every trial alone.

Execution: `distributed.LocalCluster` with one single-threaded worker process per core (torch
threads set to 1 in every trial), an existing scheduler (`scheduler="tcp://host:8786"`, run
folders must then be on a file system the workers share), or in-process (`serial=True`). Dask is
an optional extra: `pip install 'creditlab[sweep]'`.

Layout: spec.py (the description), parse.py (files' dicts and flags into one, checked),
files.py (reading sweep files and sweep folders' JSON within limits), trial.py (one trial,
anywhere), pack.py (a pack of trials as one population, anywhere), store.py (state on disk and
the summary), run.py (running a sweep), cli.py (`creditlab sweep`).
"""

from engine.sweep.spec import (DISTRIBUTIONS, DONE, METRICS, SWEEP_FILE, SWEEPS_DIR, TRIALS_FILE,
                               Distribution, Search, SweepError, SweepSpec, Trial, packs)
from engine.sweep.parse import check_trials, parse_distribution, parse_sweep
from engine.sweep.files import load_sweep_file
from engine.sweep.trial import make_row, run_trial
from engine.sweep.pack import run_pack
from engine.sweep.store import (best_table, finished_trials, format_best, list_sweeps, load_trials,
                                sweep_dir, sweep_runs, trials_frame)
from engine.sweep.run import (SweepBusy, SweepResult, SweepUnavailable,
                              default_workers, import_dask, run_sweep)

__all__ = ["SweepSpec", "Search", "Trial", "Distribution", "SweepError", "SweepResult",
           "load_sweep_file", "parse_sweep", "parse_distribution", "run_sweep", "run_trial",
           "run_pack", "packs",
           "finished_trials", "load_trials", "list_sweeps", "best_table", "format_best",
           "sweep_dir", "TRIALS_FILE",
           "SweepBusy", "SweepUnavailable", "check_trials", "default_workers", "import_dask",
           "make_row", "sweep_runs", "trials_frame", "METRICS",
           "DISTRIBUTIONS", "DONE", "SWEEP_FILE", "SWEEPS_DIR"]

"""Reproduce one of the paper's experiments: train, save the results, draw the figures, print the table.

    .venv/bin/python scripts/reproduce.py <experiment> [--quick] [--seeds N] [--no-train]

Experiments: feedback, lrsearch, mlp, mlp-long, autoencoder, conv, ablations, scaling-lrsearch, scaling
(see engine/paper.py).
Each (condition, seed) is a run folder under results/<experiment>[-quick]/runs/ (rerunning resumes
and skips the runs already done there; `--workers N` runs them on a local Dask cluster), the tables
derived from them go to results/<experiment>[-quick]/{final,history}.parquet, and the table
(mean ± std over seeds) is printed as Markdown. `--no-train` only redraws from saved results.
Figures go to results/<experiment>[-quick]/figures/ as PNG (or --figures DIR). The report's own
figures in docs/figures/ are tracked files: they are redrawn only with --update-docs (quick runs
get a "-quick" suffix so they never overwrite the report's figures).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

try:
    from engine import experiments as ex  # noqa: E402
    from reports import figures, tables  # noqa: E402
except ModuleNotFoundError as exc:       # e.g. the system's python, which has no torch
    sys.exit(f"reproduce: cannot import {exc.name}; run it with the project's venv: "
             f".venv/bin/python scripts/reproduce.py ... (make serve or make test sets it up)")

DOCS_FIGURES = ROOT / "docs" / "figures"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=sorted(ex.EXPERIMENTS))
    p.add_argument("--quick", action="store_true", help="the couple-of-minutes budget (CI)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per condition (default 3; quick: 2)")
    p.add_argument("--no-train", action="store_true", help="only redraw figures and the table from saved results")
    p.add_argument("--fresh", action="store_true", help="ignore saved results and run everything again")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                   help="where to train (default cpu: deterministic for a seed)")
    p.add_argument("--workers", type=int, default=None,
                   help="run the trials on a local Dask cluster of N processes (the sweep extra)")
    p.add_argument("--results", default=None, help="results root (default results/)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--figures", default=None, metavar="DIR",
                       help="where the PNGs go (default: results/<experiment>[-quick]/figures/)")
    where.add_argument("--update-docs", action="store_true",
                       help=f"redraw the report's tracked figures in {DOCS_FIGURES.relative_to(ROOT)}/")
    args = p.parse_args(argv)
    exp = ex.EXPERIMENTS[args.experiment]
    print(f"{exp.title} — budget: {exp.budget(args.quick)}", file=sys.stderr)
    if args.no_train:
        try:
            res = ex.load_results(args.experiment, args.quick, args.results)
        except FileNotFoundError as exc:
            print(f"reproduce: no saved results to redraw ({exc.filename}); run it without --no-train",
                  file=sys.stderr)
            return 2
    else:
        res = ex.run_experiment(args.experiment, args.quick, args.seeds, root=args.results,
                                resume=not args.fresh, progress=True, device=args.device,
                                workers=args.workers)
    # Tracked files change only when asked: a redraw gives other PNG bytes (matplotlib's
    # version, fonts) even from the same numbers, and the report's figures must match its text.
    out = DOCS_FIGURES if args.update_docs else Path(args.figures or ex.experiment_dir(
        args.experiment, args.quick, args.results) / "figures")
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        paths = []
        print("reproduce: no figures: matplotlib is missing (.venv/bin/pip install -e '.[notebooks]'; "
              "make test installs it)", file=sys.stderr)
    else:
        paths = figures.save_figures(figures.make_figures(res, args.quick, args.results), out,
                                     suffix="-quick" if args.quick else "")
    variants = sorted(set(zip(res.final["cfg_dataset"], res.final["data_variant"])))
    print(f"## {exp.title}\n")
    print(f"Budget: {exp.budget(args.quick)}. Data: " + ", ".join(f"{d} ({v})" for d, v in variants) + ".\n")
    print(tables.to_markdown(tables.table(res)))
    for family in tables.families(args.experiment):
        print(f"\nOne paired t test per claim of {family} (A − B over seeds, mean ± 95 % CI):\n")
        print(tables.to_markdown(tables.claims(res, family=family)))
    print(f"\nresults: {res.path}\nfigures: " + ", ".join(str(q.relative_to(ROOT)) if q.is_relative_to(ROOT)
                                                     else str(q) for q in paths))
    bad = res.final[res.final["status"] != "finished"]
    if len(bad):
        which = ", ".join(f"{c} seed {s}" for c, s in zip(bad["condition"], bad["seed"]))
        print(f"\n{len(bad)} run(s) diverged: " + which)
    return 0


if __name__ == "__main__":
    sys.exit(main())

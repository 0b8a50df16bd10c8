"""reports/cost.py reads a dear condition and its reference at equal steps, noisy passes and wall
time: each seed's last record within the reference's whole budget."""

import pandas as pd

from reports.cost import at_equal_cost


def test_each_budget_reads_the_last_record_within_the_references():
    final = pd.DataFrame({"condition": ["K4", "K1"], "cfg_noise_draws": [2, 1], "cfg_antithetic": [True, False]})
    rows = []
    for seed in (0, 1):
        for step in range(10, 101, 10):       # K1: 1 s per 10 steps; K4 (4 passes a step): 2.5 s
            rows += [{"condition": "K1", "seed": seed, "step": step, "time": step / 10, "angle": 90 - step / 10},
                     {"condition": "K4", "seed": seed, "step": step, "time": step / 4, "angle": 80 - step / 10 - seed}]
    out = at_equal_cost(pd.DataFrame(rows), final, ("K4", "dear"), ("K1", "cheap"), {"angle": "angle"})
    got = out.set_index("budget")
    assert list(got.index) == ["equal steps", "equal noisy passes (4 : 1 a step)", "equal wall time"]
    assert list(got["dear: step"]) == ["100", "20", "40"]            # 100 steps; 400 passes; 10 s
    assert set(got["cheap: step"]) == {"100"} and set(got["seeds"]) == {2}
    assert got.loc["equal wall time", "dear: angle"] == "75.50 ± 0.71"    # 80 − 4 − seed, seeds 0 and 1
    assert got.loc["equal steps", "cheap: angle"] == "80.00 ± 0.00"
    # where the two were not timed alike, no wall-time budget
    assert list(at_equal_cost(pd.DataFrame(rows), final, ("K4", "dear"), ("K1", "cheap"), {"angle": "angle"},
                              wall=False)["budget"]) == ["equal steps", "equal noisy passes (4 : 1 a step)"]

"""reports/cost.py reads a dear condition and its reference at equal steps, noisy passes and wall
time: each seed's last record within the reference's whole budget."""

import pandas as pd

from reports.cost import at_equal_cost, own_clock


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


def test_the_cheap_side_read_within_the_dear_ones_budget_on_its_own_clock():
    # K1 ran 4× K4's steps in a population of two (one clock, both seeds), K4 alone; "A" is K1's
    # single run of 100 steps, which times K1 at 0.2 s a step alone
    final = pd.DataFrame({"condition": ["K4", "K1", "A"], "cfg_noise_draws": [4, 1, 1], "cfg_antithetic": False})
    rows = []
    for seed in (0, 1):
        rows += [{"condition": "K4", "seed": seed, "step": s, "time": s / 2 + seed, "angle": 50 - s / 10}
                 for s in range(10, 101, 10)]
        rows += [{"condition": "K1", "seed": seed, "step": s, "time": s / 5, "angle": 90 - s / 10}
                 for s in range(10, 401, 10)]
        rows += [{"condition": "A", "seed": seed, "step": s, "time": s / 5 + seed, "angle": 0.0}
                 for s in range(10, 101, 10)]
    out = at_equal_cost(pd.DataFrame(rows), final, ("K4", "dear"), ("K1", "cheap"), {"angle": "angle"},
                        within="dear", alone="A", fmt="{:.3g}")
    got = out.set_index("budget")
    assert list(got.index) == ["equal steps", "equal noisy passes (4 : 1 a step)",
                               "equal wall time (cheap timed alone)", "equal wall time (cheap as a population member)"]
    assert set(got["dear: step"]) == {"100"}
    # 100 steps; 400 passes; K4's 50 (51) s at 0.2 (0.21) s a step alone; at 0.1 s a step as half a population
    assert list(got["cheap: step"]) == ["100", "400", "245", "400"]
    assert got.loc["equal noisy passes (4 : 1 a step)", "cheap: angle"] == "50 ± 0"


def test_a_populations_members_are_charged_their_share_of_its_clock():
    h = pd.DataFrame({"condition": ["P", "P", "P", "P", "S", "S"], "seed": [0, 0, 1, 1, 0, 1],
                      "step": [1, 2, 1, 2, 1, 1], "time": [2.0, 4.0, 2.0, 4.0, 2.0, 3.0]})
    assert list(own_clock(h)) == [1.0, 2.0, 1.0, 2.0, 2.0, 3.0]

"""Hostile numbers: integers of thousands of digits, extreme floats and networks too big for the
machine end in one line naming the setting (exit 2), never a traceback, a hang or minutes of
allocation first."""

from __future__ import annotations

import contextlib
import io
import re
import sys
import time
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.errors import ConfigError
from engine.config import RunConfig, defaults

INT_SETTINGS = [name for name, d in defaults().items() if isinstance(d, int) and not isinstance(d, bool)]
FLOAT_SETTINGS = [name for name, d in defaults().items() if isinstance(d, float)]
HUGE = {"5000 digits": "9" * 5000, "minus 5000 digits": "-" + "9" * 5000,
        "4301 digits": "1" + "0" * 4300, "100 digits": "9" * 100}


def train(*argv: str) -> tuple[int, list[str]]:
    """`creditlab train` in this process: exit status and stderr's lines."""
    err = io.StringIO()
    steps = [] if any(a.startswith("--steps") for a in argv) else ["--steps", "3"]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["train", "--no-save", "--quiet", *steps, *argv])
    return rc, err.getvalue().strip().splitlines()


def flag(name: str, value: str) -> str:
    return f"--{name.replace('_', '-')}={value}"       # joined: argparse takes "-999…" for a flag


# ----------------------------------------------------------------- huge integers
@pytest.mark.parametrize("text", HUGE.values(), ids=HUGE.keys())
@pytest.mark.parametrize("name", INT_SETTINGS)
def test_an_integer_of_thousands_of_digits_is_one_line_naming_the_setting(name, text):
    rc, lines = train(flag(name, text))
    assert rc == 2 and len(lines) == 1, lines
    digits = len(text.lstrip("-"))
    shown = f"{name}={'-' if text[0] == '-' else ''}{text.lstrip('-')[:12]}… ({digits:,} digits)"
    assert lines[0].startswith(f"creditlab: error: {shown} is not allowed; it must be an integer >= ")
    assert len(lines[0]) < 200


@pytest.mark.parametrize("width", ["50," + "9" * 5000, "9" * 5000 + ",50", "50," + "1" + "0" * 4300],
                         ids=["second", "first", "4301 digits"])
def test_a_width_entry_of_thousands_of_digits_is_one_line(width):
    rc, lines = train("--width", width)
    assert rc == 2 and len(lines) == 1, lines
    assert re.match(r"creditlab: error: width=\d{12}… \([\d,]+ digits\) is not allowed; it must be an "
                    r"integer >= 1 and <= 65,536$", lines[0]), lines[0]


def test_leading_zeros_do_not_count_as_digits():
    rc, lines = train("--depth", "0" * 5000 + "1", "--width", "8")
    assert rc == 0, lines


@pytest.mark.parametrize("name", INT_SETTINGS)
@pytest.mark.parametrize("value", [10**5000, -(10**5000), 2**63, 2**64 + 3],
                         ids=["10**5000", "-10**5000", "2**63", "2**64+3"])
def test_the_same_integers_from_python_json_or_a_url_are_refused_by_validate(name, value):
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict({name: value}).validate()
    message = str(err.value)
    assert message.startswith(f"{name}=") and "is not allowed; it must be an integer >= " in message
    assert "\n" not in message and len(message) < 200


@pytest.mark.parametrize("change", [{"lr": 10**400}, {"sigma": -(10**5000)}, {"rule": 10**5000},
                                    {"freeze_forward": 10**5000}, {"width": [50, 10**5000]},
                                    {"momentum": 10**400}], ids=["lr", "sigma", "rule", "freeze_forward",
                                                                  "width", "momentum"])
def test_huge_integers_in_any_setting_are_refused_in_one_line(change):
    name = next(iter(change))
    with pytest.raises(ConfigError) as err:
        RunConfig.from_dict(change).validate()
    assert str(err.value).startswith(f"{name}=") and "digits)" in str(err.value)
    assert "\n" not in str(err.value) and len(str(err.value)) < 200


def test_settings_json_with_an_integer_over_pythons_limit_is_a_config_error():
    with pytest.raises(ConfigError, match="an integer of over 4,300 digits"):
        RunConfig.from_json('{"seed": ' + "9" * 5000 + "}")


def test_the_largest_seed_trains():
    """torch's generators take up to 2**64 − 1: the seed's bound leaves room for seed + 2."""
    rc, lines = train("--seed", str(2**63 - 1), "--width", "8", "--depth", "1")
    assert rc == 0, lines


def test_huge_integers_are_shown_by_their_first_digits_and_exact_length():
    from engine.values import shown
    limit = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        for k in (31, 4214, 4215, 4300, 4301, 20_000):
            for n in (10**k, 10**k - 1, 10**k + 1, 7 * 10**k // 3, -(10**k)):
                text = str(abs(n))
                assert shown(n) == ("-" if n < 0 else "") + f"{text[:12]}… ({len(text):,} digits)"
    finally:
        sys.set_int_max_str_digits(limit)
    assert shown(2**64 - 1) == "18446744073709551615"             # short ones whole
    assert shown("x" * 1000).endswith("… (1,000 characters)") and len(shown("x" * 1000)) < 100


# ----------------------------------------------------------------- extreme floats
READS = {"sigma": ["--rule", "np"], "feedback_lr": ["--rule", "np"], "momentum": ["--optimizer", "sgd"],
         "ridge_gamma": ["--rule", "np", "--feedback-mode", "ridge"],
         "ridge_forget": ["--rule", "np", "--feedback-mode", "ridge"], "weight_decay": ["--rule", "kp"]}


@pytest.mark.parametrize("text", ["1e-30", "5e-324", "1e308", "1e-400", "inf", "nan", "-0.0",
                                  "1" + "0" * 400, "0." + "0" * 5000 + "1"],
                         ids=["1e-30", "5e-324", "1e308", "1e-400", "inf", "nan", "-0.0", "1e400 in digits",
                              "1e-5001 in digits"])
@pytest.mark.parametrize("name", FLOAT_SETTINGS)
def test_extreme_floats_train_or_are_refused_in_one_line(name, text):
    rc, lines = train(*READS.get(name, []), flag(name, text), "--width", "8", "--depth", "1")
    if rc == 0:
        assert lines == []
    else:
        assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"creditlab: error: {name}="), lines
        assert len(lines[0]) < 300


# ----------------------------------------------------------------- networks too big
FREE = 2 * 2**30
BIG = [
    (["--width", "9000", "--depth", "2"], "width=9000 with depth 2 is not allowed on cpu: the network's "
                                          "81,684,010 weights need about"),
    (["--width", "7000", "--depth", "3"], "width=7000 with depth 3 is not allowed on cpu"),
    (["--model", "autoencoder", "--width", "7000,7000,2,7000,7000"],
     "width=[7000, 7000, 2, 7000, 7000] with depth 5 is not allowed on cpu"),
    (["--rule", "np", "--feedback-mode", "ridge", "--width", "5000", "--depth", "2"],
     "feedback_mode='ridge' is not allowed with this network on cpu: its float64 regression of B needs"),
    (["--width", "4096", "--depth", "1", "--batch-size", "65536", "--rule", "np", "--noise-draws", "64"],
     "batch_size=65536 is not allowed with this network on cpu"),
]


def _peak_rss() -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) * 1024
    except (OSError, AttributeError):
        return None


def _restart_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


@pytest.mark.parametrize("argv, says", BIG, ids=[" ".join(a) for a, _ in BIG])
def test_a_network_too_big_for_the_machine_is_refused_before_it_is_built(monkeypatch, argv, says):
    from engine import memory, trainer

    train("--width", "8", "--depth", "1")                      # imports and data, outside the timing
    monkeypatch.setattr(memory, "free_bytes", lambda device: FREE)
    monkeypatch.setattr(trainer, "build_model", lambda *a: pytest.fail("the network was built"))
    measured = _restart_peak()
    before = _peak_rss()
    started = time.perf_counter()
    rc, lines = train(*argv)
    seconds = time.perf_counter() - started
    assert rc == 2 and len(lines) == 1, lines
    assert says in lines[0] and "and 2.0 GB is free" in lines[0], lines[0]
    assert seconds < 1.0, seconds
    if measured and before is not None:
        assert _peak_rss() - before < 64 * 2**20              # nothing network-sized was allocated


def test_a_conv_net_whose_batch_does_not_fit_is_refused_before_a_step(monkeypatch):
    from engine import memory

    monkeypatch.setattr(memory, "free_bytes", lambda device: 2**30)
    started = time.perf_counter()
    rc, lines = train("--model", "conv-cifar", "--batch-size", "4096")
    assert rc == 2 and len(lines) == 1 and "batch_size=4096 is not allowed with this network" in lines[0]
    assert "and 1.0 GB is free; lower batch_size or the width" in lines[0]
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("kw", [dict(width=[50, 20]), dict(width=7, depth=4),
                                dict(model="autoencoder", width=[200, 2, 200], depth=3),
                                dict(dataset="teacher", width=30, depth=3)])
@pytest.mark.parametrize("ridge", [None, "layerwise", "direct"])
def test_the_estimate_before_building_is_the_built_networks(kw, ridge):
    from engine.data.registry import load_dataset
    from engine.memory import NetworkSize, step_bytes
    from engine.networks import build_model, fully_connected_sizes

    cfg = RunConfig(**kw).validate()
    data = load_dataset(cfg.dataset, cfg)
    planned = NetworkSize.of_sizes(fully_connected_sizes(cfg, data))
    model = build_model(cfg, data)
    assert planned == NetworkSize.of_model(model)
    assert step_bytes(planned, 128, 1000, ridge) == step_bytes(model, 128, 1000, ridge)


def test_ridge_adds_its_float64_arrays_to_the_estimate():
    from engine.memory import NetworkSize, ridge_bytes, step_bytes

    size = NetworkSize.of_sizes([64, 3000, 3000, 10])
    assert ridge_bytes(size, None, 32) == 0
    # per layer above a hidden site, out² for V, I, V + γI and its factor, in·out for S, B and Bᵀ
    layerwise = 8 * (4 * 3000**2 + 3 * 3000 * 3000) + 8 * (4 * 10**2 + 3 * 3000 * 10)
    assert ridge_bytes(size, "layerwise", 32) == layerwise
    assert ridge_bytes(size, "direct", 32) == 2 * 8 * (4 * 10**2 + 3 * 3000 * 10)   # 10 outputs → each site
    assert step_bytes(size, 32, ridge="layerwise") == step_bytes(size, 32) + layerwise


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("rule", ["np", "kp"])
def test_the_estimate_before_building_bounds_a_network_whose_weights_dominate(rule):
    """Building 64-4000-4000-10 (16M weights) and two steps, one logged, in a fresh process: the
    estimate made before it was built is above what that took and not wildly so."""
    import subprocess
    import textwrap

    script = textwrap.dedent(f"""
        import re, torch
        from engine.config import RunConfig
        from engine.data.registry import load_dataset
        from engine.memory import NetworkSize, step_bytes
        from engine.networks import fully_connected_sizes
        from engine.trainer import Trainer

        def status(key):
            text = open("/proc/self/status").read()
            return int(re.search(key + r":\\s+(\\d+) kB", text).group(1)) * 1024

        torch.set_num_threads(1)
        cfg = RunConfig(rule="{rule}", width=4000, depth=2, metric_interval=2, device="cpu").validate()
        data = load_dataset(cfg.dataset, cfg)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status("VmRSS")
        t = Trainer(cfg, dataset=data)
        t.step(); t.step()
        size = NetworkSize.of_sizes(fully_connected_sizes(cfg, data))
        print(status("VmHWM") - before, step_bytes(size, cfg.batch_size, len(data.x_test)))
    """)
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    used, estimate = map(int, out.split())
    print(f"\nused {used / 2**20:.0f} MB, estimated {estimate / 2**20:.0f} MB")
    assert used < estimate < 2 * used

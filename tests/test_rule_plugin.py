"""A rule is one module: its name, display name and its own setting, declared there, reach the
CLI, the run folder, the dashboard's sidebar and the URL with no edit anywhere else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOY = textwrap.dedent('''
    """FA whose fixed random feedback is scaled by a setting of its own."""
    from engine.rules.base import register
    from engine.rules.fa import FeedbackAlignment
    from engine.settings import option


    @register
    class ScaledFeedback(FeedbackAlignment):
        name = "toy"
        title = "Toy: scaled random feedback"
        summary = "feedback alignment with B scaled by toy_gain"
        options = {"toy_gain": option(1.0, "toy: scale of the fixed random feedback",
                                      label="Toy gain", low=0.0, high=10.0, metavar="G")}

        def __init__(self, model, cfg, generator):
            super().__init__(model, cfg, generator)
            for b in self.feedback:
                b.mul_(cfg.toy_gain)
''')


@pytest.fixture
def toy_env(tmp_path):
    (tmp_path / "toy_rule.py").write_text(TOY, encoding="utf-8")
    env = dict(os.environ, CREDITLAB_RULES="toy_rule",
               PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    return env


def _python(code: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_toy_rule_and_its_setting_reach_the_cli_and_the_run(toy_env, tmp_path):
    help_text = _cli(["train", "--help"], toy_env).stdout
    assert "--toy-gain G" in help_text and "toy: scale of the fixed random feedback" in help_text
    assert "toy" in help_text.split("--rule", 1)[1].split("\n", 1)[0]       # among the choices

    done = _cli(["train", "--rule", "toy", "--toy-gain", "2.5", "--steps", "20",
                 "--out", str(tmp_path / "runs"), "--quiet", "--json"], toy_env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["config"]["toy_gain"] == 2.5 and result["status"] == "finished"
    saved = json.loads((Path(result["run_dir"]) / "config.json").read_text(encoding="utf-8"))
    assert saved["rule"] == "toy" and saved["toy_gain"] == 2.5

    bad = _cli(["train", "--rule", "toy", "--toy-gain", "-1", "--steps", "5", "--no-save"], toy_env)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "creditlab: error: toy_gain=-1.0 is not allowed; it must be a finite number >= 0 and <= 10"]


def test_the_rule_reads_its_own_setting(toy_env):
    done = _python(textwrap.dedent("""
        import torch
        from engine import RunConfig, Trainer
        b = {g: Trainer(RunConfig.from_dict({"rule": "toy", "toy_gain": g, "steps": 1}))
             .rule.feedback_matrices()[0] for g in (1.0, 3.0)}
        assert torch.allclose(b[3.0], 3 * b[1.0]), "B is not scaled by toy_gain"
        assert RunConfig(rule="toy").toy_gain == 1.0        # its default, read as cfg.<name>
        print("ok")
    """), toy_env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_toy_setting_is_in_the_sidebar_for_its_rule_only_and_in_the_url(toy_env):
    done = _python(textwrap.dedent("""
        from app.dashboard import Dashboard
        dash = Dashboard(sync_url=False)
        try:
            state = dash.state
            assert "toy_gain" in state.fields() and "toy" in state.param["rule"].objects
            state.update_from_query({"rule": "toy", "toy_gain": "2.5"})
            assert state.to_config().toy_gain == 2.5 and state.to_query()["toy_gain"] == "2.5"
            box = dash.inputs["toy_gain"]
            assert box.visible and box.name == "Toy gain" and box.value == "2.5", box
            state.rule = "np"
            assert not box.visible and dash.inputs["sigma"].visible
            state.rule = "toy"
            assert box.visible and not dash.inputs["noise_draws"].visible
        finally:
            dash.close()
        print("ok")
    """), toy_env)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr

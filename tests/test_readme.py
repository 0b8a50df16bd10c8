"""The README's commands, as a newcomer types them after `make serve` / `make test`.

Every command the README shows (its ```bash blocks, the command-line synopsis, and inline `…`
spans that start with a command) is found in the README itself, so a command added or changed
there is checked here without editing this file:

- each is runnable as printed from the repository root: `make <target>` or `.venv/bin/<tool>`,
  never a bare `creditlab` or `python` (not on PATH unless the venv is activated);
- each `creditlab` command parses, and a training command's settings pass RunConfig.validate;
- the cheap ones run verbatim, in a scratch folder that links the repository's .venv and
  examples/ (so their runs/ land there, not in the tree); a training command with only its
  --steps cut to QUICK_STEPS; a sweep with --dry-run added; the Python example as it is;
- the slow ones (marked slow): reproduce.py redrawing from the committed results (--no-train,
  figures sent to a scratch folder), and `creditlab serve` answering on a free port.

scripts/setup.sh's wait for apt's lock is tested against a lock this test holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:            # Python 3.10: the tomli backport, a dependency there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
VENV = ROOT / ".venv"
TOOLS = ("make", "creditlab", "python", "python3", "pip", "panel", "jupyter", "source", "dask")
QUICK_STEPS = 300          # what a longer training command runs with here: seconds, not minutes
PLACEHOLDERS = {"options": "", "DIR": "runs", "FILE.toml": "examples/sweep_np_digits.toml",
                "P": "5006", "N": "10"}


# ------------------------------------------------------------------ finding the commands
def _fenced(text: str):
    return list(re.finditer(r"^```(\w*)\n(.*?)^```", text, re.M | re.S))


def _is_command(line: str) -> bool:
    words = _without_env(line)[1].split()
    return bool(words) and (words[0] in TOOLS or re.fullmatch(r"\.venv/bin/[\w.-]+", words[0]) is not None)


def _without_env(line: str) -> tuple[dict[str, str], str]:
    """`OMP_NUM_THREADS=1 cmd …` → ({"OMP_NUM_THREADS": "1"}, "cmd …")."""
    env, words = {}, line.split()
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return env, " ".join(words)


ENV: dict[str, dict[str, str]] = {}       # a command → the variables the README sets before it


def readme_commands() -> list[str]:
    """Every command the README shows, continuation lines joined, comments and the synopsis's
    descriptions cut off."""
    out = []
    for block in _fenced(README):
        lang, body = block.group(1), block.group(2)
        if lang not in ("bash", "sh", "console", ""):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip() if lang else re.split(r"\s{3,}", line.strip())[0]
            if lang and line:
                assert _is_command(line), f"a line of a ```{lang} block that is no command: {line!r}"
            if _is_command(line):
                env, command = _without_env(line)
                ENV[command] = env
                out.append(command)
    prose = re.sub(r"^```.*?^```", "", README, flags=re.M | re.S)
    out += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose) if _is_command(span)]
    return [c for c in out if "…" not in c]         # ".venv/bin/creditlab …" is a pattern


COMMANDS = readme_commands()


def _argv(command: str) -> list[str]:
    """A synopsis line's placeholders replaced by values, its [optional] brackets dropped."""
    words = []
    for word in shlex.split(command):
        word = word.strip("[]")
        word = PLACEHOLDERS.get(word, word)
        if word:
            words.append(word)
    return words


def test_the_readme_shows_the_commands_this_file_checks():
    assert "make serve" in COMMANDS and "make test" in COMMANDS
    assert sum(c.startswith(".venv/bin/creditlab train") for c in COMMANDS) >= 3
    assert any(c.startswith(".venv/bin/creditlab sweep examples/") for c in COMMANDS)
    assert any(c.startswith(".venv/bin/python scripts/reproduce.py") for c in COMMANDS)


def test_every_command_runs_as_printed_from_the_repository_root():
    bare = [c for c in COMMANDS if c.split()[0] not in ("make", "source") and not c.startswith(".venv/bin/")
]
    assert not bare, ("bare commands fail with 'command not found' until the venv is activated; "
                      f"write them as .venv/bin/...: {bare}")
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for c in COMMANDS:
        words = shlex.split(c)
        if words[0].startswith(".venv/bin/") and VENV.is_dir():      # make test's set-up has them all
            assert (ROOT / words[0]).is_file(), f"{c}: the set-up installs no {words[0]}"
        if words[0] == "make":
            assert words[1] in targets, c
        elif words[0] == "source":
            assert words[1] == ".venv/bin/activate", c
        elif words[0].startswith(".venv/bin/pip"):
            assert words[1:3] == ["install", "-e"], c
            extra = re.fullmatch(r"\.\[(\w+)\]", words[3])
            assert extra and extra.group(1) in extras, f"{c}: no such extra"
        elif words[0] == ".venv/bin/panel":
            assert words[1] == "serve" and (ROOT / words[2]).is_dir(), c


# ------------------------------------------------------------------ creditlab parses each
CREDITLAB = [c for c in COMMANDS if c.startswith(".venv/bin/creditlab")]


@pytest.mark.parametrize("command", sorted(set(CREDITLAB)))
def test_each_creditlab_command_parses_and_its_settings_are_valid(command, monkeypatch):
    from engine.cli.parser import build_parser, config_from_args

    monkeypatch.chdir(ROOT)                      # the examples/ a sweep names are read from here
    argv = _argv(command)[1:]
    if "--help" in argv:                         # run verbatim below
        with pytest.raises(SystemExit) as stop:
            build_parser(only=argv[0]).parse_args(argv)
        assert stop.value.code == 0
        return
    args = build_parser(only=argv[0]).parse_args(argv)
    if argv[0] == "train" and not args.resume:
        config_from_args(args)
    if argv[0] == "sweep":
        from engine.cli.sweep import spec_from_args
        assert spec_from_args(args).trials()


# ------------------------------------------------------------------ the cheap ones, verbatim
@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """A folder that stands in for the repository root: its .venv and examples/ are the real ones."""
    if not (VENV / "bin" / "creditlab").is_file():
        pytest.skip("no .venv/bin/creditlab: run scripts/setup.sh (make test does)")
    root = tmp_path_factory.mktemp("newcomer")
    for name in (".venv", "examples"):
        (root / name).symlink_to(ROOT / name)
    return root


def _run(command: str | list[str], cwd: Path, timeout: float = 120, readme_env: dict | None = None):
    argv = shlex.split(command) if isinstance(command, str) else command
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "MPLBACKEND": "Agg", **(readme_env or {})}
    env.pop("VIRTUAL_ENV", None)
    # PATH without the venv: a newcomer's shell has not activated it.
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if not Path(p).resolve().is_relative_to(VENV.resolve()))
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{command}: exit {out.returncode}\n{out.stderr[-2000:]}"
    return out


def _quick(command: str) -> str:
    """The command with its step budget, and nothing else, made small when it is long."""
    m = re.search(r"--steps (\d+)", command)
    if m and int(m.group(1)) > QUICK_STEPS:
        return command.replace(m.group(0), f"--steps {QUICK_STEPS}")
    return command


TRAIN = sorted({c for c in COMMANDS if c.startswith(".venv/bin/creditlab train --")
                and "--help" not in c and "--resume" not in c})


@pytest.mark.parametrize("command", TRAIN)
def test_each_training_command_runs(command, scratch):
    out = _run(_quick(command), scratch, readme_env=ENV.get(command))
    steps = int(re.search(r"--steps (\d+)", _quick(command)).group(1))
    if "--json" in command:
        result = json.loads(out.stdout)
        assert result["status"] == "finished" and result["steps"] == steps
        assert (scratch / result["run_dir"]).is_dir()


def test_help_runs_and_the_runs_it_saved_are_listed(scratch):
    for command in sorted({c for c in COMMANDS if c.endswith("--help")}):
        assert "--steps" in _run(command, scratch).stdout
    for command in CREDITLAB:
        if re.fullmatch(r"\.venv/bin/creditlab runs( \[--out DIR\])?", command):
            _run(_argv(command), scratch)


def test_the_sweep_command_lists_every_trial_with_dry_run(scratch):
    for command in [c for c in COMMANDS if re.fullmatch(r"\.venv/bin/creditlab sweep examples/\S+\.toml", c)]:
        out = _run(command + " --dry-run", scratch).stdout.splitlines()
        count = int(re.match(r"sweep \S+: (\d+) trials", out[0]).group(1))
        assert len(out) == 1 + count and count > 10


def test_the_python_example_runs(scratch):
    (code,) = [b.group(2) for b in _fenced(README) if b.group(1) == "python"
               and "from engine import" in b.group(2)]
    out = _run([".venv/bin/python", "-c", code], scratch)
    assert "2000" in out.stdout, out.stdout[-2000:]


# ------------------------------------------------------------------ the slow ones
@pytest.mark.slow
def test_reproduce_redraws_from_the_committed_results_without_touching_tracked_files(tmp_path):
    pytest.importorskip("matplotlib")
    if not (VENV / "bin" / "python").is_file():
        pytest.skip("no .venv")
    tracked = _digests()
    for command in [c for c in COMMANDS if c.startswith(".venv/bin/python scripts/reproduce.py")]:
        # --no-train: when the committed tables no longer cover the experiment's trials (a new
        # setting changes every trial's id), the command as printed retrains it for half an hour
        # and rewrites them. Its figures would go to results/<experiment>/figures/: here, tmp_path.
        out = _run(f"{command} --no-train --figures {tmp_path}", ROOT, timeout=300)
        assert "| condition |" in out.stdout and list(tmp_path.glob("*.png"))
    assert _digests() == tracked, "reproduce.py changed a tracked figure or table"


def _digests() -> dict[str, str]:
    """The report's figures and the committed results, by content."""
    files = [*(ROOT / "docs" / "figures").glob("*.png"), *(ROOT / "results").glob("*/*.parquet")]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


@pytest.mark.slow
def test_serve_answers_on_localhost(scratch):
    pytest.importorskip("panel")
    (command,) = {c for c in COMMANDS if c == ".venv/bin/creditlab serve"}
    with socket.socket() as s:                   # 5006 may be someone else's on a shared machine
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = scratch / "serve.log"
    server = subprocess.Popen(shlex.split(command) + ["--port", str(port)], cwd=scratch,
                              stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/", timeout=10) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert server.poll() is None, log.read_text()[-2000:]
                assert time.monotonic() < deadline, "the dashboard did not answer within 120 s"
                time.sleep(0.5)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


# ------------------------------------------------------------------ set-up: apt's lock
SETUP = ROOT / "scripts" / "setup.sh"


def _bash(script: str, lock: Path, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, "CREDITLAB_APT_LOCKS": str(lock), **env}
    return subprocess.run(["bash", "-c", f"set -euo pipefail; source {shlex.quote(str(SETUP))}; {script}"],
                          cwd=lock.parent, env=env, capture_output=True, text=True, timeout=60)


class _Holder:
    """Another process holding a POSIX lock on `path`, as apt or dpkg does, until release()."""

    def __init__(self, path: Path):
        code = ("import fcntl, sys; f = open(sys.argv[1], 'r+'); fcntl.lockf(f, fcntl.LOCK_EX); "
                "print('held', flush=True); sys.stdin.read()")
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "held"

    def release(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def lock(tmp_path):
    if not Path("/proc/locks").is_file():
        pytest.skip("reads /proc/locks (Linux)")
    path = tmp_path / "lock-frontend"
    path.touch()
    return path


def test_setup_scripts_are_valid_bash():
    for name in ("setup.sh", "install_data.sh"):
        out = subprocess.run(["bash", "-n", str(ROOT / "scripts" / name)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr


def test_apt_lock_wait_names_the_holder_and_returns_once_it_lets_go(lock):
    assert _bash("apt_wait_lock 5", lock).returncode == 0          # free: no wait, no line
    holder = _Holder(lock)
    try:
        proc = subprocess.Popen(["bash", "-c", f"source {shlex.quote(str(SETUP))}; apt_wait_lock 30"],
                                env={**os.environ, "CREDITLAB_APT_LOCKS": str(lock)},
                                stderr=subprocess.PIPE, text=True)
        line = proc.stderr.readline()
        assert line.startswith(f"setup: waiting for apt's lock {lock}, held by pid {holder.proc.pid} ("), line
        assert "at most 30 s" in line
    finally:
        holder.release()
    assert proc.wait(timeout=30) == 0


def test_apt_lock_wait_is_bounded_and_apt_install_then_gives_up_without_apt(lock, tmp_path):
    holder = _Holder(lock)
    try:
        t0 = time.monotonic()
        out = _bash("apt_wait_lock 2", lock)
        assert out.returncode == 1 and 2 < time.monotonic() - t0 < 20     # never short of the 2 s asked
        assert "still busy after 2 s" in out.stderr.splitlines()[-1]
        # apt_install, while apt stays busy past CREDITLAB_APT_WAIT: status 1, apt-get never run.
        calls = tmp_path / "calls"
        fake = _fake_apt(tmp_path, f"echo \"$@\" >> {calls}; exit 0")
        out = _bash("apt_install chromium || echo gave-up", lock, CREDITLAB_APT_WAIT="1",
                    PATH=f"{fake}{os.pathsep}{os.environ['PATH']}")
        assert out.stdout.strip() == "gave-up" and not calls.exists(), out.stderr
    finally:
        holder.release()


def test_apt_install_retries_a_failed_apt_get(lock, tmp_path):
    count = tmp_path / "count"
    # fails twice, then succeeds: what a lock taken between our look and apt's own gives
    fake = _fake_apt(tmp_path, f"echo \"$@\" >> {count}; [ $(grep -c install {count}) -ge 3 ]")
    out = _bash("apt_install chromium", lock, CREDITLAB_APT_PAUSE="0",
                PATH=f"{fake}{os.pathsep}{os.environ['PATH']}")
    assert out.returncode == 0, out.stderr
    assert "failed (try 1 of 3)" in out.stderr and "failed (try 2 of 3)" in out.stderr
    lines = count.read_text().splitlines()
    assert [w for line in lines for w in line.split() if w in ("install", "update")] == \
        ["install", "update", "install", "update", "install"]
    assert all("DPkg::Lock::Timeout=" in line for line in lines)


def _fake_apt(tmp_path: Path, body: str) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "apt-get").write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / "apt-get").chmod(0o755)
    return bin_dir

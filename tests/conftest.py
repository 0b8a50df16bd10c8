"""The tests' one support layer: shared fixtures, and helpers the test modules import from here.

Every test runs with one torch thread: the networks here are tiny, and on a shared 2-core
machine torch's second thread made a step 50× slower (300–390 ms against 5–7 ms). No test
measures threading; one that did would set its own count. OMP_NUM_THREADS also reaches the
processes the tests start (the CLI, the dashboard's runs).

The browser tests drive the dashboard with scripts/measure/browser.py, which the measuring scripts
use too; this file puts its folder on the path (pytest puts this one there)."""

import contextlib
import dataclasses
import functools
import math
import os
import resource
import signal
import sys
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts" / "measure"))

import pytest  # noqa: E402
import torch  # noqa: E402
from browser import CHROMIUM, chromium_context, free_port, serve_dashboard, source_info  # noqa: E402

from engine.config import RunConfig  # noqa: E402

# How long a page may take to show the server's answer to a click or an entry, and Playwright's
# default for every action: under a second on a quiet machine, many on a loaded one.
UI_TIMEOUT_MS = 60_000


@pytest.fixture(scope="session", autouse=True)
def runs_elsewhere(tmp_path_factory):
    """The dashboard saves its runs (app/library.py's runs_root): in a temporary folder during
    the tests, never in the repository's runs/ (a test that looks at them sets its own)."""
    before = os.environ.get("CREDITLAB_RUNS")
    os.environ["CREDITLAB_RUNS"] = str(tmp_path_factory.mktemp("dashboard-runs"))
    yield
    if before is None:
        os.environ.pop("CREDITLAB_RUNS", None)
    else:
        os.environ["CREDITLAB_RUNS"] = before


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def require_browser() -> None:
    """Skip the calling test module, with the reason, unless Debian's chromium and playwright are there."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium to run the browser tests",
                    allow_module_level=True)
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A context of Debian's Chromium for a module's browser tests, closed in teardown."""
    with chromium_context(tmp_path_factory.mktemp("chromium-profile")) as context:
        context.set_default_timeout(UI_TIMEOUT_MS)
        yield context


@pytest.fixture(scope="module")
def server():
    """The dashboard served on a free port for a module's browser tests: (url, the Dashboards of
    its sessions); the server and its runs are stopped in teardown."""
    with serve_dashboard() as (url, dashboards):
        yield url, dashboards


def stop_runs(dashboards) -> None:
    """Stop the runs of these sessions on the server side and wait for their processes (a failed
    test must not leave a million-step run training; a Stop button still disabled in a tab
    must not turn a slow start into a wait per tab)."""
    for dash in dashboards:
        dash.session.stop_all()
    for dash in dashboards:
        for run in dash.session.runs:
            if hasattr(run, "join"):
                run.join(60)


@pytest.fixture
def page(server, browser):
    """A fresh tab; afterwards its runs are stopped and the tab is closed."""
    url, dashboards = server
    before = len(dashboards)
    page = browser.new_page()
    try:
        yield page
    finally:
        stop_runs(dashboards[before:])
        page.close()


def show_all_settings(page) -> None:
    """Story mode, the default, keeps all but the lesson's settings in a collapsed "Advanced"
    card: switch to every setting, in view."""
    page.get_by_role("button", name="All settings").click()
    page.get_by_label("Seed", exact=True).wait_for(state="visible")


def total_points(page) -> int:
    """Points in all the page's curves."""
    return sum(s["n"] for s in source_info(page, "curves-", "step"))


# The boxes of the plots' canvases and figures, found through shadow roots.
JS_BOXES = """() => {
  const all = (root, out) => {
    for (const el of root.querySelectorAll('*')) { out.push(el); if (el.shadowRoot) all(el.shadowRoot, out); }
    return out;
  };
  const box = el => { const r = el.getBoundingClientRect();
                      return {x: r.x, y: r.y, w: r.width, h: r.height, cls: el.className}; };
  const els = all(document, []);
  return {
    canvases: els.filter(el => el.classList && el.classList.contains('bk-Canvas')).map(box)
                 .filter(b => b.w > 0 && b.h > 0),
    heatmaps: Object.fromEntries(['start', 'B', 'WT', 'diff'].map(k => [k,
        els.filter(el => el.classList && el.classList.contains('creditlab-heatmap-' + k)).map(box)])),
    curves: els.filter(el => el.classList && el.classList.contains('creditlab-curve')).map(box),
    width: window.innerWidth, height: window.innerHeight, scrollY: window.scrollY,
    scrollWidth: document.documentElement.scrollWidth,
  };
}"""


def settled_boxes(page, plots: int = 12) -> dict:
    """JS_BOXES once the layout has settled (fonts, titles, the first data): the plots' boxes
    read alike twice in a row, and `plots` plots drawn (all 12; 10 where the shown runs' rule
    makes no node-perturbation estimate, whose two plots are then hidden)."""
    last: dict = {}

    def settled():
        nonlocal last
        boxes = page.evaluate(JS_BOXES)
        same = boxes["canvases"] == last.get("canvases")
        last = boxes
        return same and len(boxes["canvases"]) >= plots
    wait_until(settled, timeout=120, what="the plots' layout kept changing", interval=0.5)
    return last


# Every title drawn on a plot whose element has a CSS class starting with `prefix` (its title,
# subtitle, each line of one): the plot's key, the text, and where the text's widest line starts
# and ends on the plot's canvas, measured with the canvas's own font. A title never wraps: what
# passes the canvas's edge is cut off. Plots not laid out (hidden) are left out.
JS_TITLES = """(prefix) => {
  const ctx = document.createElement('canvas').getContext('2d');
  const out = [];
  for (const view of Bokeh.index.all_views()) {
    const plot = view.plot_view;
    if (!view.model || view.model.type !== 'Title' || !plot || !view.model.text) continue;
    const key = plot.model.css_classes.find(c => c.startsWith(prefix) && c !== prefix);
    if (!key || plot.el.getBoundingClientRect().width === 0) continue;
    const m = view.model;
    ctx.font = `${m.text_font_style} ${m.text_font_size} ${m.text_font}`;
    const lines = m.text.split('\\n');
    const width = Math.max(...lines.map(line => ctx.measureText(line).width));
    const left = m.align === 'left' ? view.bbox.x0 + m.offset
               : m.align === 'right' ? view.bbox.x1 - m.offset - width : view.bbox.hcenter - width / 2;
    // the height its lines take, against the band the layout gave the title (from its top)
    const line = ctx.measureText(lines[0]);
    const height = lines.length * (line.fontBoundingBoxAscent + line.fontBoundingBoxDescent) * m.text_line_height;
    out.push({plot: key, text: m.text, left, right: left + width, canvas: plot.bbox.width,
              top: view.bbox.y0, height, band: view.bbox.height});
  }
  return out;
}"""


def cut_off(titles: list[dict]) -> list[str]:
    """The titles that pass their canvas's edges (left, right, or top: a band the layout gave
    them too short for their lines, whose first line then goes above the canvas), each as where
    it runs."""
    assert all(t["height"] > 0 and t["band"] > 0 for t in titles), titles      # measured, not NaN
    return [f"{t['plot']}: {t['text']!r} runs {t['left']:.0f}–{t['right']:.0f} px on {t['canvas']:.0f} px, "
            f"{t['height']:.0f} px tall in a {t['band']:.0f} px band from y = {t['top']:.0f}"
            for t in titles if t["left"] < -0.5 or t["right"] > t["canvas"] + 0.5
            or t["top"] < -0.5 or t["height"] > t["band"] + 0.5]


# A run on the embedded digits that finishes in seconds: the app tests' run.
TINY = dict(dataset="digits", depth=1, width=8, steps=400, metric_interval=10, eval_interval=100,
            device="cpu")


@pytest.fixture(scope="module")
def float64():
    """Exact comparisons in double precision, for a module (`pytestmark`); restored after it."""
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def wait_until(predicate, timeout: float = 60.0, what: str = "the condition was not met", interval: float = 0.05):
    """`predicate()`'s first true value, polled until `timeout` seconds have passed; an
    AssertionError naming `what` after that. Waits on an event with a generous bound, never a
    fixed sleep: a loaded machine is slow, not wrong."""
    t0 = time.monotonic()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"waited {timeout} s: {what}")
        time.sleep(interval)


MiB = 1 << 20


class Overran(BaseException):
    """Raised by `bounded`'s timer: not an OSError (as TimeoutError is) nor an Exception, so that no
    handler in the code under test turns it into an ordinary error."""


@contextlib.contextmanager
def bounded(seconds: float = 30.0, peak_mib: int | None = 32):
    """Fail, rather than hang or exhaust the machine, when the code inside runs past `seconds`
    or its peak allocation passes `peak_mib` (past 1 GiB more than the process holds, an
    allocation is a MemoryError). peak_mib=None: not measured (tracemalloc slows PyYAML's deep
    recursion 30-fold)."""
    def alarm(*_):
        raise Overran(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        held = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = held + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    if peak_mib is not None:
        tracemalloc.start()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
    assert peak_mib is None or peak < peak_mib * MiB, f"peak allocation {peak / MiB:.0f} MiB"


# ---------------------------------------------------------------- JupyterLab
JUPYTERLAB_TOKEN = "creditlab-test"


def creditlab_serve(port: int, log: Path | None = None):
    """`creditlab serve` on `port` (the panel server under it, app/main.py, as a user starts it);
    its output goes to `log`, so a failure can show it. The caller ends it (kill, then wait)."""
    import subprocess
    out = open(log, "w") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, "-m", "engine", "serve", "--port", str(port),
                                 "--address", "127.0.0.1"], cwd=Path(__file__).resolve().parents[1],
                                stdout=out, stderr=subprocess.STDOUT)
    finally:
        if log:
            out.close()


def listening(port: int) -> bool:
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def serve_jupyterlab(workdir: Path, notebooks: dict[str, Path], timeout: float = 120.0):
    """Run `python -m jupyterlab` headless on 127.0.0.1 with everything it writes under `workdir`.

    `notebooks` maps a path under the root folder to the notebook copied there. Kernels import
    the repository's `app` and `engine` through PYTHONPATH. Yields (base URL, token, log path).
    On exit the server, its kernels and their run processes are ended by process group.
    """
    import shutil
    import subprocess
    import urllib.request

    repo = Path(__file__).resolve().parent.parent
    root = workdir / "root"
    dirs = {name: workdir / name for name in ("config", "data", "runtime", "ipython", "settings",
                                              "workspaces", "runs", "mpl")}
    for folder in (root, *dirs.values()):
        folder.mkdir(parents=True, exist_ok=True)
    for target, source in notebooks.items():
        (root / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / target)
    # No news or update prompts: they would fetch from the network and cover the page's corner.
    notification = dirs["settings"] / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text('{"fetchNews": "false", "checkForUpdates": false}')

    env = dict(os.environ)
    env.update(JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
               JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), IPYTHONDIR=str(dirs["ipython"]),
               JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
               JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]),
               MPLCONFIGDIR=str(dirs["mpl"]), CREDITLAB_RUNS=str(dirs["runs"]),
               PYTHONPATH=os.pathsep.join(p for p in (str(repo), env.get("PYTHONPATH")) if p))
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_CONFIG_PATH", None)
    port = free_port()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--ServerApp.token={JUPYTERLAB_TOKEN}", f"--ServerApp.root_dir={root}",
           "--ServerApp.allow_root=True", "--LabApp.expose_app_in_browser=True",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    log = workdir / "jupyterlab.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"jupyterlab exited ({server.returncode}):\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={JUPYTERLAB_TOKEN}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() - t0 > timeout:
                raise RuntimeError(f"jupyterlab did not answer within {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, JUPYTERLAB_TOKEN, log
    finally:
        _stop_process_tree(server)


def _stop_process_tree(proc, grace: float = 20.0) -> None:
    """End `proc` and everything under it. Jupyter starts each kernel in a session of its own, so
    the descendants' process groups are collected before the server goes, then ended too."""
    import psutil

    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    groups = {proc.pid}
    for kid in kids:
        try:
            groups.add(os.getpgid(kid.pid))
        except OSError:
            pass
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGTERM)        # the server shuts its kernels down
    try:
        proc.wait(grace)
    except Exception:
        pass
    _, alive = psutil.wait_procs(kids, timeout=5)
    for group in groups - {os.getpgrp()}:
        with contextlib.suppress(OSError):
            os.killpg(group, signal.SIGKILL)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    with contextlib.suppress(Exception):
        proc.wait(5)


# ------------------------------------------------------------- rules against their formulas
def setup(rule, widths=(7, 5), activation="sigmoid", loss="mse", seed=0, **cfg_kw):
    """A small MLP, rule `rule` on it, and a batch: (model, rule, cfg, x, y, objective)."""
    from engine.networks import mlp
    from engine.objective import Objective
    from engine.rules import RULES

    torch.manual_seed(seed)
    model = mlp(6, list(widths), 4, activation)
    cfg = RunConfig(rule=rule, depth=len(widths), width=list(widths), activation=activation,
                    loss=loss, seed=seed, **cfg_kw)
    gen = torch.Generator().manual_seed(seed + 1)
    r = RULES[rule](model, cfg, gen)
    x = torch.randn(9, 6)
    y = torch.randint(0, 4, (9,))
    return model, r, cfg, x, y, Objective(loss, "classification", 4)


def dsig(a):
    s = torch.sigmoid(a)
    return s * (1 - s)


def manual_forward(model, x):
    hs, as_ = [x], []
    for i, layer in enumerate(model.layers):
        a = hs[-1] @ layer.weight.T + layer.bias
        as_.append(a)
        hs.append(torch.sigmoid(a) if i < len(model.layers) - 1 else a)
    return hs, as_


# ----------------------------------------------- populations: member k is the run of its settings
CASE_STEPS = 12                      # each case trains this many steps

CASES = {                            # a name → its settings; the rule is the first word
    "bp": {}, "fa": {}, "dfa": {}, "ss": {},
    "ss brsf": {"rule": "ss", "ss_variant": "brsf"},
    "ss usf": {"rule": "ss", "ss_variant": "usf"},
    "wm": {}, "wm conv": {"rule": "wm", "model": "conv-small", "mirror_lr": 0.05},
    "kp": {"optimizer": "sgd", "lr": 0.05},
    "sg": {}, "sg ridge": {"rule": "sg", "feedback_mode": "ridge", "ridge_relative": True},
    "np": {}, "np ridge": {"rule": "np", "feedback_mode": "ridge", "ridge_forget": 0.99},
    "np plain step": {"rule": "np", "feedback_normalize": False, "control_variate": False,
                      "feedback_lr": 0.1},
    "np K draws, antithetic": {"rule": "np", "noise_draws": 3, "antithetic": True},
    "np cycle": {"rule": "np", "perturb": "cycle"},
    "np-dfa": {}, "np-dfa ridge": {"rule": "np-dfa", "feedback_mode": "ridge"},
    "fa on noise": {"rule": "fa", "train_on_noise": True},
    "np autoencoder": {"rule": "np", "model": "autoencoder", "depth": 3, "width": [20, 4, 20]},
    "np warm-up": {"rule": "np", "warmup_steps": 5},
    "np conv": {"rule": "np", "model": "conv-small", "activation": "tanh"},
    "np conv ridge": {"rule": "np", "model": "conv-small", "feedback_mode": "ridge", "activation": "tanh"},
    "sg conv": {"rule": "sg", "model": "conv-small", "activation": "tanh"},
    "fa conv": {"rule": "fa", "model": "conv-small"},
    "kp conv": {"rule": "kp", "model": "conv-small", "optimizer": "sgd", "lr": 0.05},
    "dfa conv": {"rule": "dfa", "model": "conv-small"},
    "np-dfa cifar net, dropout": {"rule": "np-dfa", "model": "conv-cifar", "batch_size": 4},
    "pnp": {}, "pnp K draws, antithetic": {"rule": "pnp", "noise_draws": 3, "antithetic": True},
    "pnp cycle": {"rule": "pnp", "perturb": "cycle"},
    "pnp conv": {"rule": "pnp", "model": "conv-small", "activation": "tanh"},
}


def case_config(name: str, **overrides) -> RunConfig:
    """CASES[name]'s config on a small digits MLP, with `overrides`."""
    settings = {"rule": name.split()[0], "dataset": "digits", "depth": 2, "width": [24, 16],
                "batch_size": 8, "steps": CASE_STEPS, "metric_interval": 4, "eval_interval": 8,
                "device": "cpu", **CASES[name], **overrides}
    return RunConfig(**settings)


@functools.cache
def digits64():
    """The digits dataset in float64 (the population tests compare members at float64)."""
    from engine.data.registry import load_dataset

    data = load_dataset("digits")
    return dataclasses.replace(data, x_train=data.x_train.double(), x_test=data.x_test.double())


def train_steps(cfg: RunConfig) -> tuple:
    """A trainer of `cfg` on digits64 after cfg.steps steps, and its records."""
    from engine.trainer import Trainer

    trainer = Trainer(cfg, dataset=digits64())
    records = [r for r in (trainer.step() for _ in range(cfg.steps)) if r is not None]
    return trainer, records


def assert_close(a, b, what: str) -> None:
    assert a.shape == b.shape, what
    assert torch.allclose(a, b, rtol=1e-9, atol=1e-12), f"{what}: differs by {(a - b).abs().max():.3g}"


def assert_same_number(a: float, b: float, what: str) -> None:
    """Equal to rounding; an angle of ~1e-7° between two identical errors is rounding too."""
    assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-5), \
        f"{what}: {a} against {b}"

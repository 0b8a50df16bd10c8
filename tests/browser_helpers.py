"""Shared by the browser tests and the scripts: serve the dashboard, drive Debian's chromium.

Playwright's sync API is used directly (not pytest-playwright's `page` fixture): the server runs
in its own thread with its own event loop, which is what makes its periodic callbacks fire.
"""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")


def require_browser() -> None:
    """Skip the calling test module, with the reason, unless Debian's chromium and playwright are there."""
    import pytest

    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium to run the browser tests",
                    allow_module_level=True)
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# Read a named Bokeh data source from the page: column lengths, and any scalar column's last value.
JS_SOURCE = """
([prefix, column]) => {
  if (!window.Bokeh || !Bokeh.documents || !Bokeh.documents.length) return null;
  const out = [];
  for (const doc of Bokeh.documents) {
    for (const m of doc.all_models) {
      if (m.type !== "ColumnDataSource" && !(m.constructor && m.constructor.name === "ColumnDataSource")) continue;
      if (!m.name || !m.name.startsWith(prefix)) continue;
      const data = m.data instanceof Map ? Object.fromEntries(m.data) : m.data;
      const col = data[column];
      const n = col ? col.length : 0;
      let last = null;
      if (col && n) { const v = col[n - 1]; last = (typeof v === "number") ? v : null; }
      out.push({name: m.name, n: n, last: last});
    }
  }
  return out;
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_dashboard(port: int | None = None, **dashboard_kwargs):
    """Serve a fresh Dashboard per session at http://127.0.0.1:<port>/app, in a thread."""
    import panel as pn

    from app.app_hooks import warm_up
    from app.dashboard import Dashboard

    warm_up()
    port = port or free_port()
    created: list = []

    def app():
        dash = Dashboard(**dashboard_kwargs)
        created.append(dash)
        return dash

    server = pn.serve({"app": app}, port=port, address="127.0.0.1", threaded=True, show=False,
                      websocket_origin=[f"127.0.0.1:{port}", f"localhost:{port}"])
    _wait_port(port)
    try:
        yield f"http://127.0.0.1:{port}/app", created
    finally:
        for dash in created:
            dash.close()
        server.stop()


def _wait_port(port: int, timeout: float = 20.0) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the dashboard server did not listen on port {port} within {timeout} s")


@contextlib.contextmanager
def chromium_context(profile_dir, viewport=(1600, 1000)):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile_dir), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": viewport[0], "height": viewport[1]})
        try:
            yield context
        finally:
            context.close()


def source_info(page, prefix: str, column: str) -> list[dict]:
    return page.evaluate(JS_SOURCE, [prefix, column]) or []


def wait_for_bokeh(page, timeout: float = 30.0) -> None:
    page.wait_for_function("() => window.Bokeh && Bokeh.documents && Bokeh.documents.length > 0",
                           timeout=timeout * 1000)


# ---------------------------------------------------------------- JupyterLab
JUPYTERLAB_TOKEN = "creditlab-test"


@contextlib.contextmanager
def serve_jupyterlab(workdir: Path, notebooks: dict[str, Path], timeout: float = 120.0):
    """Run `python -m jupyterlab` headless on 127.0.0.1 with everything it writes under `workdir`.

    `notebooks` maps a path under the root folder to the notebook copied there. Kernels import
    the repository's `app` and `engine` through PYTHONPATH. Yields (base URL, token, log path).
    On exit the server, its kernels and their run processes are ended by process group.
    """
    import os
    import shutil
    import subprocess
    import sys
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
    import os
    import signal

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

"""The app: seconds from `streamlit run app.py` to the first page rendered with the shipped run, the
page switches once warm, and the server's peak memory, measured in headless Chromium."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ui.pending import BOX_KEY
from vae_tf import runs

from . import REPO
from .memory import peak_memory_mb

SHIPPED = ("fashion-default", "fashion-2d", "fashion-linear-gaussian")
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


RUNNING = '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stStatusWidgetRunningManIcon"]'


PENDING = f'[data-testid="stMain"] [class*="st-key-{BOX_KEY}-"]'  # an answer being computed off the script run
PROGRESS = f'[data-testid="stMain"] :is([data-testid="stProgress"], [class*="st-key-{BOX_KEY}-"])'
CONTENT = (".js-plotly-plot .trace, .js-plotly-plot .hm, .js-plotly-plot .heatmaplayer image, "
           ".js-plotly-plot .imagelayer image, .katex")  # a picture (image grids, mosaics) is in the image layer


def tensorflow_import_seconds() -> float:
    out = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); import tensorflow; "
                          "print(time.perf_counter() - t)"], capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return float(out.stdout.strip().splitlines()[-1])


def _rendered_at(page, since: float, timeout: float, content: bool = True, not_title: str | None = None,
                 settle: float = 0.5, polling_ok: bool = False) -> float:
    """Seconds from `since` until the script is idle with a page title (other than `not_title`, the page
    left behind) and, if `content`, a chart's data or equations drawn — and stays so for `settle`
    seconds (the time returned is when that began). polling_ok: a page showing a background job's progress
    bar, or the box of an answer being computed off its script run (ui.pending), counts as rendered (the bar's
    fragment reruns every 2 s and the box's script run is still running, so the app is not idle while it
    waits); without it, a page is rendered once that box has gone (its answers drawn)."""
    ready_since = None
    title = page.locator('[data-testid="stMain"] h1')
    progress = page.locator(PROGRESS)
    while time.perf_counter() - since < timeout:
        idle = page.locator(IDLE).count() > 0 and page.locator(RUNNING).count() == 0
        if not polling_ok:  # the page complete: an answer still being computed is not rendered yet
            idle = idle and page.locator(PENDING).count() == 0
        ready = ((idle or (polling_ok and progress.count() > 0)) and title.count() > 0
                 and (not_title is None or title.first.inner_text() != not_title)
                 and (not content or page.locator(f'[data-testid="stMain"] :is({CONTENT})').count() > 0))
        now = time.perf_counter()
        if not ready:
            ready_since = None
        elif ready_since is None:
            ready_since = now
        elif now - ready_since >= settle:
            return ready_since - since
        time.sleep(0.05)
    raise TimeoutError(f"{page.url} was not rendered after {timeout:.0f} s")


def app_timings(timeout: float = 120) -> dict:
    """Cold start (launch → first page rendered with the shipped run), every page once to warm it,
    then a timed switch to each page through the sidebar, again once the server's background work is done,
    then a new visitor's first visit of every page; the server's peak memory after each stage.
    The server reads a temporary copy of the shipped runs, so checkpoints/ is never written."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"error": "playwright not installed (pip install -r requirements-test.txt)"}
    if not (REPO / "app.py").exists() or not all(runs.is_run(REPO / "checkpoints" / n) for n in SHIPPED):
        return {"error": "app.py or a shipped run is missing"}
    port, root = server_place("vae_lab_bench_")
    t0 = time.perf_counter()
    proc = _start_server(root, port)
    out = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            while True:
                try:
                    page.goto(f"http://127.0.0.1:{port}/", timeout=5000)
                    break
                except Exception:  # the server is not listening yet
                    if time.perf_counter() - t0 > timeout or proc.poll() is not None:
                        raise
                    time.sleep(0.1)
            out["answering_s"] = time.perf_counter() - t0
            out["launch_marks_s"] = _launch_marks(page, t0, timeout)
            out["cold_start_s"] = _rendered_at(page, t0, timeout)
            out["server_peak_mb_first_page"] = peak_memory_mb(proc.pid)
            out["first_visit_s"], out["switch_s"] = _page_switches(page)
            out["server_peak_mb_all_pages"] = peak_memory_mb(proc.pid)
            out["background_s"] = time.perf_counter() - t0 + _until_idle(proc.pid)  # its default answers done
            out["idle_switch_s"] = _page_switches(page)[1]
            newcomer = browser.new_page(viewport={"width": 1400, "height": 1000})  # a new visitor, its own session
            newcomer.goto(f"http://127.0.0.1:{port}/")
            _rendered_at(newcomer, time.perf_counter(), timeout)
            out["warm_first_visit_s"] = _page_switches(newcomer, once=True)[0]
            browser.close()
    except Exception as e:  # report, do not crash the benchmark
        out["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(root, ignore_errors=True)
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_place(prefix: str) -> tuple[int, Path]:
    """A free local port, and a temporary folder with copies of the shipped runs under checkpoints/."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    for name in SHIPPED:
        shutil.copytree(REPO / "checkpoints" / name, root / "checkpoints" / name)
    return free_port(), root


def _start_server(root: Path, port: int, preexec=None, script: str = "app.py") -> subprocess.Popen:
    """streamlit run `script` (the app's, unless floor.py's) on `port`, reading the runs under root/checkpoints
    (never the repository's); preexec runs in the child before it execs (benchmarks/load.py: enter a memory
    cgroup)."""
    app_default = {k: v for k, v in os.environ.items() if k != "VAE_LAB_ANSWER_WAIT_S"}  # tests/conftest.py sets it
    env = {**app_default, "VAE_LAB_CHECKPOINTS": str(root / "checkpoints"), "VAE_LAB_UPLOADS": str(root / "uploads"),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen([sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=preexec)


def _until_idle(pid: int, timeout: float = 600, busy: float = 0.1) -> float:
    """Seconds until the server used under `busy` of a core for two seconds (its background work done)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        before = _cpu_seconds(pid)
        time.sleep(2.0)
        if (_cpu_seconds(pid) - before) / 2.0 < busy:
            break
    return time.perf_counter() - t0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _launch_marks(page, t0: float, timeout: float) -> dict:
    """Seconds from launch until the page's title is drawn, the first script run has ended, and its first chart's
    data is drawn (plotly.js, loaded by the browser with the first chart)."""
    marks, wanted = {}, {"title": '[data-testid="stMain"] h1', "script done": IDLE,
                         "chart drawn": f'[data-testid="stMain"] :is({CONTENT})'}
    while len(marks) < len(wanted) and time.perf_counter() - t0 < timeout:
        for what, selector in wanted.items():
            if what not in marks and page.locator(selector).count() > 0:
                marks[what] = time.perf_counter() - t0
        time.sleep(0.05)
    return marks


def _page_switches(page, once: bool = False) -> tuple[dict, dict]:
    """(first visit, warm switch) seconds per page, through the sidebar, ending where it began: a first
    visit warms the page's caches, then the switch is timed again (not with once)."""
    links = page.locator('[data-testid="stSidebarNav"] a')
    titles = [links.nth(i).locator("span").last.inner_text().strip() for i in range(links.count())]
    first_visit, switch = {}, {}
    for store in (first_visit,) if once else (first_visit, switch):
        for title in titles[1:] + titles[:1]:
            left = page.locator('[data-testid="stMain"] h1').first.inner_text()
            t = time.perf_counter()
            page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()
            try:
                store[title] = _rendered_at(page, t, 60, content=False, not_title=left)
            except TimeoutError:
                store[title] = float("nan")
    return first_visit, switch


def run_app(res: dict):
    res["tensorflow_import_s"] = tensorflow_import_seconds()
    app = app_timings()
    res.update({f"app_{key}": v for key, v in app.items()})
    if "cold_start_s" in app:
        print(f"app: launch to the first page rendered with the shipped run: {app['cold_start_s']:.1f} s (importing "
              f"TensorFlow alone: {res['tensorflow_import_s']:.1f} s); server peak memory "
              f"{app['server_peak_mb_first_page']:.0f} MB")
        print(f"  the launch, seconds from it: the server answering {app['answering_s']:.1f}, "
              + ", ".join(f"{what} {t:.1f}" for what, t in app["launch_marks_s"].items()))
    if app.get("switch_s"):
        sw = app["switch_s"]
        res["app_switch_max_s"] = max(sw.values())
        res["app_launch_first_visit_max_s"] = max(app["first_visit_s"].values())
        print("  the first visitor, while the server computes its defaults: page switches once warm (first visit "
              "in brackets), seconds: " + ", ".join(
            f"{t_} {v:.2f} ({app['first_visit_s'].get(t_, float('nan')):.1f})" for t_, v in sw.items()))
        print(f"  slowest warm switch {res['app_switch_max_s']:.2f} s; server peak memory after every page "
              f"{app['server_peak_mb_all_pages']:.0f} MB")
    if app.get("idle_switch_s"):
        idle = app["idle_switch_s"]
        res["app_idle_switch_max_s"] = max(idle.values())
        print(f"  once the server's own background work was done ({app['background_s']:.0f} s after launch: the "
              "default answers of every page, the estimates, AIS, q* and BDMC), page switches, seconds: "
              + ", ".join(f"{t_} {v:.2f}" for t_, v in idle.items()))
    if app.get("warm_first_visit_s"):
        first = app["warm_first_visit_s"]
        res["app_first_visit_max_s"] = max(first.values())
        print("  a new visitor on the warm server, first visits, seconds: "
              + ", ".join(f"{t_} {v:.2f}" for t_, v in first.items()))
    if "error" in app:
        print(f"app: not measured ({app['error']})")
    print()

"""The app under load, as Streamlit Community Cloud runs it: one server — with the training and estimate
workers it starts — inside a 2.7 GB memory cgroup, and several visitors' headless Chromiums on the same
two cores.

Each visitor opens the app, may act (press Train, ask for an estimate, try a refused training or a large
upload), then visits every page in its own order (the page list rotated), `rounds` times. A render is
the time from the click in the sidebar to the page idle with its title, or showing the progress of the
background job it waits for (app._rendered_at); the pooled
renders give p50/p95, and the first opens their maximum. "1 visitor" is the baseline that issue 16's
targets are ratios of (p95 and first open at 6 visitors ≤ 4× it); "8 visitors" is its memory target:
the cgroup's peak must stay under the cap and the server must live. Before the stages, floor.py opens the
smallest Streamlit app with 1 and 6 visitors in the same harness: the framework's own first-open ratio, printed
beside the app's.
"""
from __future__ import annotations

import contextlib
import io
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from . import REPO
from .app import IDLE, PENDING, RUNNING, _rendered_at, _start_server, server_place
from .cgroup import MemoryCap, machine_cpu_seconds

CAP_MB = 2700
NAV = '[data-testid="stSidebarNav"] a'
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
TRAINING = "?hp.epochs=30&hp.max_train_images=16384"  # long enough to run through the stage
ESTIMATE = "log-px?page.logpx.n=500&page.logpx.k=5000"
# every sidebar field at its maximum: must be refused before it starts, with its estimated memory and time
MAXIMUM = ("?hp.latent_dim=256&hp.hidden=4096,4096,4096,4096&hp.batch_size=4096&hp.epochs=500&hp.mc_samples=64"
           "&hp.max_train_images=10000000")


def big_upload(path: Path) -> Path:
    """The issue's legal upload: 30,000 test images of 64×64 (131 MB unpacked, a few hundred KB packed)."""
    x = np.zeros((30_000, 64, 64), np.uint8)
    x[:, 20:44, 20:44] = 255
    np.savez_compressed(path, x_train=x[:2000], x_test=x)
    return path


class Visitor(threading.Thread):
    """One browser (its own Playwright: the sync API is per thread) that opens the app and browses."""

    def __init__(self, url: str, order: list[int], rounds: int, start: threading.Barrier, act: str = "",
                 render_timeout: float = 180):
        super().__init__(daemon=True)
        self.url, self.order, self.rounds, self.start_line, self.act = url, order, rounds, start, act
        self.render_timeout = render_timeout
        self.first_open = float("nan")
        self.renders: list[tuple[str, float]] = []  # (page, seconds)
        self.completes: list[float] = []  # seconds to the page complete, each render's (Visitor._complete)
        self.errors: list[str] = []
        self.acted = ""  # what the action showed
        self.lost_clicks = 0

    def run(self):
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.set_default_timeout(120_000)
                self.start_line.wait()
                t = time.perf_counter()
                page.goto(self.url + ("" if self.act.endswith(".npz") else self.act))  # an act is a link, or a file
                self.first_open = _rendered_at(page, t, 240, content=False)
                self.acted = self._act(page)
                self._browse(page)
                browser.close()
        except Exception as e:  # reported with the figures, never raised from the thread
            self.errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:160]}")

    def _act(self, page) -> str:
        if self.act == TRAINING:
            page.locator(".st-key-train-go button").click()
            page.get_by_text("Training in the background").first.wait_for(timeout=120_000)
            return "training"
        if self.act.startswith("log-px?"):  # ESTIMATE, or one of another size
            page.get_by_role("button", name="Estimate").click()  # then wait for it to start, as a person would
            page.get_by_text(re.compile("Estimating log p|waiting its turn")).first.wait_for(timeout=180_000)
            return "estimate asked"
        if self.act == MAXIMUM:
            refused = page.get_by_text("Cannot train: this run would need").first
            refused.wait_for(timeout=60_000)
            disabled = page.locator(".st-key-train-go button").is_disabled()
            return ("refused up front, Train disabled: " if disabled else "shown but Train enabled: ") + \
                refused.inner_text()[:160]
        if self.act.endswith(".npz"):
            page.locator('.st-key-page-train-upload input[type="file"]').set_input_files(self.act)
            box = page.locator('[data-testid^="stAlertContent"]').filter(
                has_text=re.compile("Upload not accepted|test images of"))
            box.first.wait_for(timeout=180_000)
            return box.first.inner_text()[:200]
        return ""

    def _switch(self, page, link, left: str, t: float) -> float:
        """Seconds from the click at t to the new page rendered. A click the app dropped (idle after 15 s, still
        on the page left: a rerun of that page — a training that ended, a new epoch followed — replaced the
        pending switch) is clicked again, as a person would, and counted in lost_clicks."""
        with contextlib.suppress(TimeoutError):
            return _rendered_at(page, t, 15, content=False, not_title=left, polling_ok=True)
        title = page.locator('[data-testid="stMain"] h1')
        if (page.locator(IDLE).count() and not page.locator(RUNNING).count() and title.count()
                and title.first.inner_text() == left):
            self.lost_clicks += 1
            link.click()
        return _rendered_at(page, t, self.render_timeout, content=False, not_title=left, polling_ok=True)

    def _complete(self, page, t: float, rendered: float) -> float:
        """Seconds from the click at t to the page complete: `rendered`, or, where the page showed the box of an
        answer computed off its script run (ui.pending), until that box has gone and the page is idle — a person
        who came for that answer waits for it (at most render_timeout: nan if it did not come)."""
        if not page.locator(PENDING).count():
            return rendered
        while time.perf_counter() - t < self.render_timeout:
            if (not page.locator(PENDING).count() and page.locator(IDLE).count()
                    and not page.locator(RUNNING).count()):
                return time.perf_counter() - t
            time.sleep(0.1)
        return float("nan")

    def _shot(self, page, title: str) -> str:
        """A screenshot of a page that did not render, under test-artifacts/load/ (gitignored)."""
        path = REPO / "test-artifacts" / "load" / f"{self.name}-{re.sub(r'[^a-z0-9]+', '-', title.lower())}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(Exception):
            page.screenshot(path=str(path), full_page=True)
        return f"test-artifacts/load/{path.name}"

    @staticmethod
    def _on(page, link) -> bool:
        """Whether the page open is the one this sidebar link leads to."""
        from urllib.parse import urlparse

        return urlparse(page.url).path.rstrip("/") == urlparse(link.get_attribute("href") or "").path.rstrip("/")

    def _browse(self, page):
        links = page.locator(NAV)
        titles = [links.nth(i).locator("span").last.inner_text().strip() for i in range(links.count())]
        for _ in range(self.rounds):
            for i in self.order:
                link = page.locator(NAV).filter(has_text=titles[i]).first
                if self._on(page, link):
                    continue  # a person does not click the page they are on (an act's link opened it)
                left = page.locator('[data-testid="stMain"] h1').first.inner_text()
                t = time.perf_counter()
                link.click()
                try:
                    seconds = self._switch(page, link, left, t)
                    self.renders.append((titles[i], seconds))
                    self.completes.append(self._complete(page, t, seconds))
                except TimeoutError:
                    self.errors.append(f"{titles[i]}: not rendered in {self.render_timeout:.0f} s "
                                       f"({self._shot(page, titles[i])})")
                exceptions = page.locator('[data-testid="stException"]').count()
                if exceptions:
                    self.errors.append(f"{titles[i]}: {exceptions} exception(s) on the page")


def stage(visitors: int, acts: tuple[str, ...] = (), rounds: int = 2, cap_mb: int = CAP_MB,
          render_timeout: float = 180) -> dict:
    """A fresh server under the cap, `visitors` at once (the first len(acts) of them act first)."""
    port, root = server_place("vae_lab_load_")
    with MemoryCap(cap_mb) as cap:
        proc = _start_server(root, port, preexec=cap.join if cap else None)
        try:
            _wait_listening(port, proc)
            busy0, server0 = machine_cpu_seconds(), cap.cpu_seconds if cap else 0.0
            out = crowd(f"http://127.0.0.1:{port}/", visitors, acts, rounds, render_timeout)
            out["server_alive"] = proc.poll() is None
            if cap is not None:
                out.update(cap_mb=cap_mb, peak_mb=cap.peak_mb, oom_kills=cap.oom_kills,
                           server_cpu_s=cap.cpu_seconds - server0, machine_cpu_s=machine_cpu_seconds() - busy0)
        finally:
            proc.kill()
            proc.wait(15)
            if cap is not None:
                cap.kill_all()
            shutil.rmtree(root, ignore_errors=True)
    return out


def crowd(url: str, visitors: int, acts: tuple[str, ...], rounds: int, render_timeout: float = 180,
          pages: int = 11) -> dict:
    """Every visitor at once (they wait for each other at the door); their renders pooled and per page."""
    door = threading.Barrier(visitors)
    people = [Visitor(url, order(v, pages), rounds, door, acts[v] if v < len(acts) else "", render_timeout)
              for v in range(visitors)]
    for v in people:
        v.start()
    for v in people:
        v.join(timeout=1800)
    per_page: dict[str, list[float]] = {}
    for v in people:
        for title, seconds in v.renders:
            per_page.setdefault(title, []).append(seconds)
    renders = np.asarray([r for rs in per_page.values() for r in rs])
    p50, p95 = (np.percentile(renders, [50, 95]) if renders.size else (float("nan"),) * 2)
    completes = np.asarray([c for v in people for c in v.completes])
    c50, c95 = (np.nanpercentile(completes, [50, 95]) if np.isfinite(completes).any() else (float("nan"),) * 2)
    return dict(visitors=visitors, renders=int(renders.size), p50_s=float(p50), p95_s=float(p95),
                complete_p50_s=float(c50), complete_p95_s=float(c95),
                waited_for_answers=sum(c != r for v in people for (_, r), c in zip(v.renders, v.completes)),
                first_open_max_s=max(v.first_open for v in people), first_opens_s=[v.first_open for v in people],
                page_p95_s={t: float(np.percentile(r, 95)) for t, r in per_page.items()},
                errors=[e for v in people for e in v.errors], acted=[v.acted for v in people if v.acted],
                lost_clicks=sum(v.lost_clicks for v in people))


def order(v: int, pages: int) -> list[int]:
    """Visitor v's pages: every page but the first (Train, where it opened) from its own start, then Train."""
    rest = list(range(1, pages))
    return rest[v % len(rest):] + rest[:v % len(rest)] + [0]


def _wait_listening(port: int, proc, timeout: float = 120):
    import urllib.request

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and proc.poll() is None:
        with contextlib.suppress(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            return
        time.sleep(0.3)
    raise RuntimeError(f"the server did not answer within {timeout:.0f} s")


def run_load(res: dict, rounds: int = 2):
    """Streamlit's own floor (floor.py), then the three stages side by side, in one run; every figure lands in
    res (load_*)."""
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        print("load: not measured (playwright not installed)\n")
        return
    from .floor import run_floor  # here: floor.py builds on this module's crowd()

    run_floor(res)
    upload = big_upload(Path(tempfile.mkdtemp(prefix="vae_lab_upload_")) / "big-64x64.npz")
    one = stage(1, rounds=rounds)
    six = stage(6, acts=(TRAINING,), rounds=rounds)
    eight = stage(8, acts=(TRAINING, ESTIMATE, ESTIMATE, MAXIMUM, str(upload)), rounds=rounds)
    shutil.rmtree(upload.parent, ignore_errors=True)
    for label, s in (("1", one), ("6", six), ("8", eight)):
        res.update({f"load_{label}_{k}": v for k, v in s.items() if k not in ("errors", "acted")})
    print(report(one, six, eight))


def report(one: dict, six: dict, eight: dict) -> str:
    buf = io.StringIO()
    buf.write("load: one server in a memory cgroup of "
              + (f"{one['cap_mb']} MB" if "cap_mb" in one else "— (no cgroup here: uncapped)")
              + ", visitors' Chromiums on the same cores; page render = click → page idle with its title\n")
    for label, s in (("1 visitor", one), ("6 visitors + a training", six),
                     ("8 visitors + a training, 2 estimates, a refused maximum, a 131 MB upload", eight)):
        peak = f"; peak {s['peak_mb']:,.0f} MB, OOM kills {s['oom_kills']}" if "peak_mb" in s else ""
        if s.get("machine_cpu_s"):
            peak += (f"; the server and its workers used {s['server_cpu_s']:,.0f} of the machine's "
                     f"{s['machine_cpu_s']:,.0f} busy CPU-seconds ({s['server_cpu_s'] / s['machine_cpu_s']:.0%}; "
                     "the rest: the visitors' Chromiums)")
        nan = float("nan")
        buf.write(f"  {label}: {s.get('renders', 0)} renders, p50 {s.get('p50_s', nan):.2f} s, p95 "
                  f"{s.get('p95_s', nan):.2f} s; slowest first open {s.get('first_open_max_s', nan):.1f} s; server "
                  f"{'alive' if s.get('server_alive') else 'DEAD'}{peak}; errors: {len(s.get('errors', []))}; "
                  f"switches dropped by a rerun and clicked again: {s.get('lost_clicks', 0)}\n")
        if s.get("complete_p95_s") is not None:
            buf.write(f"    to the page complete (an answer computed off the script run drawn, on "
                      f"{s.get('waited_for_answers', 0)} of the renders): p50 {s['complete_p50_s']:.2f} s, p95 "
                      f"{s['complete_p95_s']:.2f} s\n")
        if s.get("page_p95_s"):
            slow = sorted(s["page_p95_s"].items(), key=lambda kv: -kv[1])[:3]
            buf.write("    slowest pages (p95): " + ", ".join(f"{t} {v:.1f} s" for t, v in slow) + "\n")
        for e in s.get("errors", [])[:5]:
            buf.write(f"    error: {e}\n")
        for a in s.get("acted", []):
            buf.write(f"    {a}\n")
    return buf.getvalue()


def target_lines(res: dict) -> list[str]:
    """Issue 16's load targets, met or NOT met, from run_load's figures."""
    if "load_1_p95_s" not in res:
        return []
    lines = []
    for key, what in (("p95_s", "p95 page render"), ("first_open_max_s", "slowest first open")):
        one, six = res[f"load_1_{key}"], res[f"load_6_{key}"]
        ratio = six / one if one else float("nan")
        lines.append(f"  {what} at 6 visitors ≤ 4× one visitor's: {six:.2f} s / {one:.2f} s = {ratio:.1f}× "
                     f"{'met' if ratio <= 4 else 'NOT met'}")
    if "load_floor_ratio" in res:
        six, one = res["load_floor_6_first_open_max_s"], res["load_floor_1_first_open_s"]
        lines.append(f"    (the smallest Streamlit app in the same harness: {six:.2f} s / {one:.2f} s = "
                     f"{res['load_floor_ratio']:.1f}×, floor.py)")
    alive = res.get("load_8_server_alive") and not res.get("load_8_oom_kills")
    peak = res.get("load_8_peak_mb")
    lines.append(f"  8 visitors under a {CAP_MB} MB cap: server {'alive' if alive else 'KILLED'}, peak "
                 + (f"{peak:,.0f} MB" if peak is not None else "not measured (no cgroup)")
                 + f" {'met' if alive and peak is not None and peak <= CAP_MB else 'NOT met'}")
    return lines


if __name__ == "__main__":  # python -m benchmarks.load: this stage alone
    figures: dict = {}
    run_load(figures)
    print("\n".join(["targets:", *target_lines(figures)]))

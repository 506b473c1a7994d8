"""Widgets every page uses: a chart with its caption, a background job's progress, chart selections."""
from __future__ import annotations

import time

import numpy as np
import streamlit as st

from . import active, catalog


def chart(fig, caption: str | None = None, key: str | None = None, toolbar: bool = True):
    """A plotly chart at full width, with a sentence under it saying what it shows and why.
    Image grids pass toolbar=False: plotly's toolbar would cover the titles of the top-right images."""
    st.plotly_chart(fig, width="stretch", key=key, config={"displaylogo": False, "displayModeBar": toolbar})
    if caption:
        st.caption(caption)


def fmt_seconds(s: float | None) -> str:
    if s is None or not np.isfinite(s):
        return "…"
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}" if s >= 60 else f"{s} s"


def fmt_duration(seconds: float) -> str:
    """A duration in words, for an estimate: 'under a minute', '12 minutes', '5 hours', '3 days'."""
    if seconds < 60:
        return "under a minute"
    for unit, size, upto in (("minute", 60, 120 * 60), ("hour", 3600, 48 * 3600), ("day", 86400, float("inf"))):
        if seconds < upto:
            n = round(seconds / size)
            return f"{n:,} {unit}{'s' if n != 1 else ''}"
    raise AssertionError


def job_text(label: str, job, unit: str = "images") -> str:
    place = getattr(job, "place", 0)
    if place:
        ahead = "next" if place == 1 else f"{place - 1} ahead of it"
        return f"{label}: waiting its turn for the server's cores ({ahead}; every visitor's questions take turns)"
    if not getattr(job, "reported", True):  # its first report gives the total: "0 of 1" would be untrue
        return f"{label}: starting…"
    return f"{label}: {job.done} of {job.total} {unit} (ETA {fmt_seconds(job.eta_seconds)})"


def poll_jobs(jobs: dict, unit: str | dict = "images", note: str = "", stops: dict | None = None):
    """Progress bars of running background jobs ({label: job}; unit: one for all, or {label: unit}), redrawn
    every 2 s without rerunning the page; once all are done the page reruns to show their answers. stops:
    {label: button key} for the jobs that get a Stop beside their bar."""
    running = {label: j for label, j in jobs.items() if j is not None and j.running}
    if not running:
        return

    @st.fragment(run_every=2.0)
    def progress():
        if not any(j.running for j in running.values()):
            st.rerun()
        for label, j in running.items():
            text = (job_text(label, j, unit[label] if isinstance(unit, dict) else unit) + note if j.running
                    else f"{label}: done")
            if label not in (stops or {}):
                st.progress(j.fraction, text=text)
                continue
            left, right = st.columns([7, 1], vertical_alignment="center")
            left.progress(j.fraction, text=text)
            right.button("Stop", key=stops[label], on_click=j.cancel, disabled=not j.running,
                         icon=":material/stop_circle:", help="Stop at the end of the current compiled call.")
    progress()


def wait_for(job, label: str, stop_key: str, stop_help: str):
    """Block this script run until `job` ends, with a progress bar and a Stop button (used where the
    page has nothing to show before the answer)."""
    box = st.empty()
    with box.container():
        with st.status(label, expanded=True):
            bar = st.progress(0.0)
            st.button("Stop", key=stop_key, on_click=job.cancel, icon=":material/stop_circle:", help=stop_help)
            while job.running:
                bar.progress(job.fraction, text=f"{job.done} of {job.total} images · "
                                                f"ETA {fmt_seconds(job.eta_seconds)}")
                time.sleep(0.2)
    box.empty()


def offer_run(name: str, why: str, key: str):
    """A button that makes another run, better suited to this page, the active run."""
    if catalog.exists(name):
        st.button(f"Use {name}", key=key, type="primary", on_click=active.make_active, args=(name,),
                  icon=":material/swap_horiz:", help=why)
    else:
        st.caption(f"The shipped run {name} is not on this server; checkpoints/make_shipped_runs.sh re-creates it.")


def selected_latents(event) -> list[tuple[float, float]]:
    """The z of each point in a plotly selection event of a posterior map (the click targets carry
    their z as customdata; points of other traces carry their own x, y)."""
    points = []
    selection = (event or {}).get("selection") or {}
    for p in selection.get("points") or []:
        cd = p.get("customdata")
        if isinstance(cd, (list, tuple)) and len(cd) == 2:
            points.append((float(cd[0]), float(cd[1])))
        elif p.get("x") is not None and p.get("y") is not None:
            points.append((float(p["x"]), float(p["y"])))
    return points


def selected_indices(event) -> list[int]:
    """Test indices (customdata) of the points in a latent-points selection event, in order, once each."""
    out = []
    for p in ((event or {}).get("selection") or {}).get("points") or []:
        cd = p.get("customdata")
        cd = cd[0] if isinstance(cd, (list, tuple)) and cd else cd
        if isinstance(cd, (int, float)) and int(cd) not in out:
            out.append(int(cd))
    return out



"""Training curves: ELBO, reconstruction term and KL term over (fractional) epochs, for one run as it
trains or for several runs compared. One three-panel figure builder draws both."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import ELBO_COLOR, LOGPX_COLOR, RUN_COLORS, base_layout

PANEL_TITLES = ("ELBO", "reconstruction  E_q[log p(x|z)]", "KL(q(z|x) ‖ p(z))")
TEST_KEYS = ("test_elbo", "test_recon", "test_kl")  # each panel's per-epoch test value in a history


def smooth(values, window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists so far): no look-ahead,
    so a live curve does not change its past as new steps arrive."""
    v = np.asarray(values, np.float64)
    if window <= 1 or len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def curve_panels(traces, zoom, height: int, pad: float, shared_xaxes: bool = False,
                 top_margin: int | None = None, first_title: str = PANEL_TITLES[0]) -> go.Figure:
    """The three panels side by side. traces: (panel 0–2, trace) pairs, in drawing order. zoom: for each
    panel, the arrays of values its y axis must show, widened by `pad` × their range (callers leave out
    the first 5 % of training, which lies far below the rest); a panel with none keeps plotly's range."""
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07, shared_xaxes=shared_xaxes,
                        subplot_titles=(first_title, *PANEL_TITLES[1:]))
    for j, trace in traces:
        fig.add_trace(trace, row=1, col=j + 1)
    for j, arrays in enumerate(zoom):
        arrays = [np.asarray(a, np.float64).ravel() for a in arrays]
        values = np.concatenate(arrays) if arrays else np.zeros(0)
        if len(values):
            lo, hi = float(values.min()), float(values.max())
            margin = pad * (hi - lo) + 1e-6
            fig.update_yaxes(range=[lo - margin, hi + margin], row=1, col=j + 1)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="nats / image", row=1, col=1)
    fig.update_annotations(font_size=13)
    base_layout(fig, height)
    fig.update_layout(legend=dict(y=-0.25))
    if top_margin is not None:  # panel titles below plotly's toolbar
        fig.update_layout(margin=dict(t=top_margin))
    return fig


def robust(y) -> np.ndarray:
    """The per-step values a panel's y axis must show: the last 95 % of training (the first steps lie far below
    the rest), clipped to their 1st–99th percentiles, so a few wild steps (a learning rate far too high) do not
    flatten the curve into a line. Test points are always shown in full."""
    y = np.asarray(y, np.float64)
    tail = y[len(y) // 20:] if len(y) > 20 else y
    tail = tail[np.isfinite(tail)]
    return np.clip(tail, *np.percentile(tail, [1, 99])) if len(tail) else tail


def _test_points(epochs, key: str) -> list[dict]:
    return [e for e in epochs if e.get(key) is not None]


def training_curves(steps, steps_per_epoch: int, epochs=(), height: int = 340, objective: str = "ELBO") -> go.Figure:
    """One run: per-step training values (faint) with their moving average (bold), and the test set
    after each epoch (markers). steps: rows [step, objective, recon, kl], the objective the ELBO or the
    IWAE bound L_k an IWAE run maximises (named by `objective`: the first panel says which, and that its
    per-epoch test points are the ELBO); epochs: per-epoch dicts with test_elbo / test_recon / test_kl."""
    steps = np.asarray(steps, np.float64).reshape(-1, 4)
    x = steps[:, 0] / max(int(steps_per_epoch), 1)
    window = int(np.clip(len(steps) // 25, 1, 50))
    traces, zoom = [], []
    for j, key in enumerate(TEST_KEYS):
        y = steps[:, j + 1]
        traces.append((j, go.Scatter(x=x, y=y, mode="lines", line=dict(color=ELBO_COLOR, width=1), opacity=0.25,
                                     name="train, per step", legendgroup="raw", showlegend=j == 0,
                                     hovertemplate="epoch %{x:.2f}: %{y:.1f}<extra>per step</extra>")))
        traces.append((j, go.Scatter(x=x, y=smooth(y, window), mode="lines", line=dict(color=ELBO_COLOR, width=2.5),
                                     name=f"train, smoothed ({window} steps)", legendgroup="smooth",
                                     showlegend=j == 0,
                                     hovertemplate="epoch %{x:.2f}: %{y:.1f}<extra>smoothed</extra>")))
        ep = _test_points(epochs, key)
        if ep:
            traces.append((j, go.Scatter(x=[e["epoch"] for e in ep], y=[e[key] for e in ep],
                                         mode="lines+markers", marker=dict(size=9, color=LOGPX_COLOR),
                                         line=dict(color=LOGPX_COLOR, dash="dot"), name="test set, per epoch",
                                         legendgroup="test", showlegend=j == 0,
                                         hovertemplate="epoch %{x}: %{y:.2f}<extra>test</extra>")))
        zoom.append([robust(y), [e[key] for e in ep]] if len(y) else [])
    first = "ELBO" if objective == "ELBO" else f"{objective} (train) · ELBO (test)"
    return curve_panels(traces, zoom, height, pad=0.08, top_margin=60, first_title=first)


def compare_curves(histories: dict, steps_per_epoch: dict, height: int = 380) -> go.Figure:
    """Several runs on shared axes: per-step training values smoothed (lines), test set after each
    epoch (markers). histories: run name → history ({"epochs": [...], "steps": [...]})."""
    traces, zoom = [], [[], [], []]
    for i, (name, h) in enumerate(histories.items()):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        steps = np.asarray(h.get("steps") or [], np.float64).reshape(-1, 4)
        x = steps[:, 0] / max(int(steps_per_epoch.get(name, 1)), 1)
        window = int(np.clip(len(steps) // 25, 1, 50))
        epochs = h.get("epochs") or []
        for j, key in enumerate(TEST_KEYS):
            if len(steps):
                traces.append((j, go.Scatter(
                    x=x, y=smooth(steps[:, j + 1], window), mode="lines", name=f"{name} (train)", legendgroup=name,
                    showlegend=j == 0, line=dict(color=color, width=2),
                    hovertemplate="epoch %{x:.2f}: %{y:.2f}<extra>" + name + " train</extra>")))
                zoom[j].append(robust(steps[:, j + 1]))
            ep = _test_points(epochs, key)
            if ep:
                traces.append((j, go.Scatter(
                    x=[e["epoch"] for e in ep], y=[e[key] for e in ep], mode="markers", name=f"{name} (test)",
                    legendgroup=name, showlegend=j == 0,
                    marker=dict(size=9, color=color, symbol="diamond", line=dict(color="white", width=1)),
                    hovertemplate="epoch %{x}: %{y:.2f}<extra>" + name + " test</extra>")))
            zoom[j].append([e[key] for e in ep])
    return curve_panels(traces, zoom, height, pad=0.06, shared_xaxes=True)

"""Plotly figures for the app: plain functions from arrays to a go.Figure (no Streamlit here).

Every chart of the app is built here so it can be tested without a browser, and so the
pages stay thin. Units are nats per image throughout.
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# A qualitative palette with ten well-separated colours (one per Fashion-MNIST class).
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
PATH_COLORS = {"linear": "#111111", "spherical": "#e8590c"}
ELBO_COLOR, LOGPX_COLOR, EXACT_COLOR, GRID_COLOR = "#4263eb", "#e8590c", "#2b8a3e", "#c2255c"
FONT = dict(size=13)


def _base_layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    """Legend under the plot (the top-right corner belongs to plotly's toolbar)."""
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), font=FONT,
                      legend=dict(orientation="h", yanchor="top", y=-0.2, x=0, xanchor="left"), **kw)
    return fig


def class_color(label: int) -> str:
    return CLASS_COLORS[int(label) % len(CLASS_COLORS)]


# -- images ----------------------------------------------------------------------------------
def image_grid(images, titles=None, ncols: int = 8, cell: int = 84, title_lines: int = 1,
               image_shape: tuple[int, int] | None = None) -> go.Figure:
    """Images in [0, 1] as a grid of grey heatmaps (0 black, 1 white), one subplot each, with titles.

    images: (N, H, W), or (N, H·W) with image_shape. Each heatmap keeps its pixels (hover shows them)."""
    images = np.asarray(images, np.float64)
    if images.ndim == 2:
        if image_shape is None:
            side = int(round(math.sqrt(images.shape[1])))
            if side * side != images.shape[1]:
                raise ValueError(f"cannot infer the image shape of {images.shape[1]} pixels; pass image_shape")
            image_shape = (side, side)
        images = images.reshape(len(images), *image_shape)
    n = len(images)
    if n == 0:
        raise ValueError("no images to draw")
    ncols = max(1, min(ncols, n))
    rows = math.ceil(n / ncols)
    titles = list(titles) if titles is not None else []
    title_px = (15 * title_lines + 8) if titles else 6
    height = rows * (cell + title_px) + 8
    padded = [str(t) for t in titles] + [""] * (rows * ncols - len(titles))
    fig = make_subplots(rows=rows, cols=ncols, subplot_titles=padded if titles else None,
                        horizontal_spacing=min(0.02, 1 / max(ncols - 1, 1)),
                        vertical_spacing=min(title_px / height, 1 / max(rows - 1, 1)))
    for i, img in enumerate(images):
        r, c = divmod(i, ncols)
        fig.add_trace(go.Heatmap(z=np.round(img, 3), colorscale="gray", zmin=0, zmax=1, showscale=False,
                                 name=str(titles[i]) if i < len(titles) else f"image {i}",
                                 hovertemplate="row %{y}, col %{x}: %{z:.2f}<extra></extra>"),
                      row=r + 1, col=c + 1)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    for i in range(1, rows * ncols + 1):  # square pixels in every cell
        suffix = "" if i == 1 else str(i)
        fig.layout[f"yaxis{suffix}"].scaleanchor = f"x{suffix}"
    fig.update_annotations(font=dict(size=12, color="#222"))
    fig.update_layout(height=height, margin=dict(l=4, r=4, t=title_px + 2, b=4), plot_bgcolor="white")
    return fig


def reconstruction_grid(originals, reconstructions, original_titles, reconstruction_titles,
                        ncols: int = 8, image_shape=None) -> go.Figure:
    """Row pairs: a row of data images, then the row of their reconstructions right under it."""
    originals, reconstructions = np.asarray(originals), np.asarray(reconstructions)
    if len(originals) != len(reconstructions):
        raise ValueError("need one reconstruction per image")
    ncols = max(1, min(ncols, len(originals)))
    images, titles = [], []
    for s in range(0, len(originals), ncols):
        block = slice(s, s + ncols)
        pad = ncols - len(originals[block])
        for part, names in ((originals, original_titles), (reconstructions, reconstruction_titles)):
            images.extend(list(part[block]) + [np.full_like(part[0], np.nan)] * pad)
            titles.extend(list(names[block]) + [""] * pad)
    return image_grid(np.stack(images), titles, ncols=ncols, title_lines=2, image_shape=image_shape)


# -- training curves -------------------------------------------------------------------------
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


def training_curves(steps, steps_per_epoch: int, epochs=(), height: int = 340) -> go.Figure:
    """Three panels over (fractional) epochs: ELBO, reconstruction term, KL term.

    steps: rows [step, elbo, recon, kl] (per-step training values, faint) with their moving
    average (bold); epochs: per-epoch dicts with test_elbo / test_recon / test_kl (markers)."""
    steps = np.asarray(steps, np.float64).reshape(-1, 4)
    spe = max(int(steps_per_epoch), 1)
    x = steps[:, 0] / spe
    window = int(np.clip(len(steps) // 25, 1, 50))
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07, subplot_titles=(
        "ELBO", "reconstruction  E_q[log p(x|z)]", "KL(q(z|x) ‖ p(z))"))
    test_keys = ("test_elbo", "test_recon", "test_kl")
    for j in range(3):
        y = steps[:, j + 1]
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", line=dict(color=ELBO_COLOR, width=1), opacity=0.25,
                                 name="train, per step", legendgroup="raw", showlegend=j == 0,
                                 hovertemplate="epoch %{x:.2f}: %{y:.1f}<extra>per step</extra>"), row=1, col=j + 1)
        fig.add_trace(go.Scatter(x=x, y=smooth(y, window), mode="lines", line=dict(color=ELBO_COLOR, width=2.5),
                                 name=f"train, smoothed ({window} steps)", legendgroup="smooth", showlegend=j == 0,
                                 hovertemplate="epoch %{x:.2f}: %{y:.1f}<extra>smoothed</extra>"), row=1, col=j + 1)
        ep = [e for e in epochs if e.get(test_keys[j]) is not None]
        if ep:
            fig.add_trace(go.Scatter(x=[e["epoch"] for e in ep], y=[e[test_keys[j]] for e in ep],
                                     mode="lines+markers", marker=dict(size=9, color=LOGPX_COLOR),
                                     line=dict(color=LOGPX_COLOR, dash="dot"), name="test set, per epoch",
                                     legendgroup="test", showlegend=j == 0,
                                     hovertemplate="epoch %{x}: %{y:.2f}<extra>test</extra>"), row=1, col=j + 1)
        if len(y):  # the first steps of a run sit far below the rest: zoom on the later 95 %
            tail = y[len(y) // 20:] if len(y) > 20 else y
            lo, hi = float(np.min(tail)), float(np.max(tail))
            extra = [e[test_keys[j]] for e in ep]
            lo, hi = min([lo] + extra), max([hi] + extra)
            pad = 0.08 * (hi - lo) + 1e-6
            fig.update_yaxes(range=[lo - pad, hi + pad], row=1, col=j + 1)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="nats / image", row=1, col=1)
    fig.update_annotations(font_size=13)
    _base_layout(fig, height)
    fig.update_layout(legend=dict(y=-0.25), margin=dict(t=60))  # titles below plotly's toolbar
    return fig


# -- the latent space ------------------------------------------------------------------------
def latent_map(points, labels, class_names=(), paths=None, endpoints=None,
               axis_titles=("z₁", "z₂"), height: int = 520) -> go.Figure:
    """Latent means of test images (points (N, 2)), coloured by class, with paths (m, 2) on top."""
    points = np.asarray(points, np.float64)
    fig = go.Figure()
    labels = np.zeros(len(points), int) if labels is None else np.asarray(labels)
    for c in np.unique(labels):
        sel = labels == c
        name = class_names[c] if 0 <= c < len(class_names) else str(c)
        fig.add_trace(go.Scattergl(x=points[sel, 0], y=points[sel, 1], mode="markers", name=name,
                                   marker=dict(size=4, color=class_color(c), opacity=0.55),
                                   hovertemplate=f"{name}<br>(%{{x:.2f}}, %{{y:.2f}})<extra></extra>"))
    for kind, p in (paths or {}).items():
        p = np.asarray(p, np.float64)
        fig.add_trace(go.Scatter(x=p[:, 0], y=p[:, 1], mode="lines+markers", name=f"{kind} path",
                                 line=dict(color=PATH_COLORS.get(kind, "#000"), width=3),
                                 marker=dict(size=7, color=PATH_COLORS.get(kind, "#000")),
                                 hovertemplate=f"{kind}, step %{{pointNumber}}<extra></extra>"))
    if endpoints is not None:
        e = np.asarray(endpoints, np.float64)
        fig.add_trace(go.Scatter(x=e[:, 0], y=e[:, 1], mode="markers+text", text=["A", "B"][:len(e)],
                                 textposition="top center", textfont=dict(size=16, color="#000"),
                                 marker=dict(size=16, color="white", line=dict(color="#000", width=3)),
                                 name="ends A, B", hoverinfo="skip", cliponaxis=False))
    fig.update_xaxes(title_text=axis_titles[0], zeroline=False)
    fig.update_yaxes(title_text=axis_titles[1], zeroline=False, scaleanchor="x", scaleratio=1)
    _base_layout(fig, height)
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1, x=1.02, xanchor="left", itemsizing="constant"))
    return fig


def latent_axis_1d(z, labels, class_names=(), paths=None, height: int = 420, seed: int = 0) -> go.Figure:
    """A 1-D latent: each class's latent means as a jittered strip, and the paths as rows below."""
    z = np.asarray(z, np.float64).reshape(-1)
    labels = np.zeros(len(z), int) if labels is None else np.asarray(labels)
    jitter = np.random.default_rng(seed).uniform(-0.3, 0.3, len(z))
    fig = go.Figure()
    classes = list(np.unique(labels))
    for row, c in enumerate(classes):
        sel = labels == c
        name = class_names[c] if 0 <= c < len(class_names) else str(c)
        fig.add_trace(go.Scattergl(x=z[sel], y=row + jitter[sel], mode="markers", name=name, showlegend=False,
                                   marker=dict(size=4, color=class_color(c), opacity=0.5),
                                   hovertemplate=f"{name}: z = %{{x:.2f}}<extra></extra>"))
    ticks = [class_names[c] if 0 <= c < len(class_names) else str(c) for c in classes]
    for i, (kind, p) in enumerate((paths or {}).items()):
        p = np.asarray(p, np.float64).reshape(-1)
        y = -1.5 - i
        fig.add_trace(go.Scatter(x=p, y=np.full(len(p), y), mode="lines+markers", name=f"{kind} path",
                                 line=dict(color=PATH_COLORS.get(kind, "#000"), width=3), marker=dict(size=8),
                                 hovertemplate=f"{kind}, step %{{pointNumber}}: z = %{{x:.2f}}<extra></extra>"))
        ticks.insert(0, f"{kind} path")
    tickvals = [-1.5 - i for i in range(len(paths or {}))][::-1] + list(range(len(classes)))
    fig.update_yaxes(tickvals=tickvals, ticktext=ticks, range=[-1.5 - len(paths or {}), len(classes)])
    fig.update_xaxes(title_text="z (the latent has one dimension)")
    return _base_layout(fig, height)


def path_norms(t, norms: dict, reference: float | None = None, height: int = 300) -> go.Figure:
    """‖z(t)‖ along each path; reference: √d, the radius near which N(0, I) in d dimensions keeps its mass."""
    fig = go.Figure()
    for kind, n in norms.items():
        fig.add_trace(go.Scatter(x=list(t), y=list(n), mode="lines+markers", name=f"{kind} path",
                                 line=dict(color=PATH_COLORS.get(kind, "#000"), width=2.5),
                                 hovertemplate=f"{kind}: t = %{{x:.2f}}, ‖z‖ = %{{y:.2f}}<extra></extra>"))
    if reference is not None:
        fig.add_hline(y=reference, line=dict(color="#888", dash="dash"),
                      annotation_text=f"√d = {reference:.2f}", annotation_position="bottom right")
    fig.update_xaxes(title_text="t (0 = image A, 1 = image B)")
    top = max([float(np.max(n)) for n in norms.values()] + [reference or 0.0])
    fig.update_yaxes(title_text="‖z(t)‖", range=[0, 1.15 * top])
    return _base_layout(fig, height)


# -- log p(x) against the ELBO ---------------------------------------------------------------
def elbo_vs_logpx(log_px, elbo, exact=None, grid=None, height: int = 460) -> go.Figure:
    """Per image: x = importance-sampled log p(x), y = ELBO, with y = x. Every point lies on or
    under the line, by the gap KL(q(z|x) ‖ p(z|x)). exact: (N,) closed-form log p(x) of the same
    images; grid: (idx, values) numerical-integration log p(x) of images idx; both drawn as rings."""
    log_px, elbo = np.asarray(log_px, np.float64), np.asarray(elbo, np.float64)
    fig = go.Figure()
    xs = [log_px, elbo]
    fig.add_trace(go.Scattergl(x=log_px, y=elbo, mode="markers", name="importance sampling  (log p̂(x), ELBO)",
                               marker=dict(size=6, color=LOGPX_COLOR, opacity=0.7),
                               customdata=np.arange(len(elbo)),
                               hovertemplate="image %{customdata}<br>log p̂(x) = %{x:.2f}<br>ELBO = %{y:.2f}<extra></extra>"))
    if exact is not None:
        exact = np.asarray(exact, np.float64)
        xs.append(exact)
        fig.add_trace(go.Scattergl(x=exact, y=elbo[:len(exact)], mode="markers", name="exact log p(x) (closed form)",
                                   marker=dict(size=11, color="rgba(0,0,0,0)", line=dict(color=EXACT_COLOR, width=2)),
                                   hovertemplate="exact log p(x) = %{x:.2f}<br>ELBO = %{y:.2f}<extra></extra>"))
    if grid is not None:
        idx, values = np.asarray(grid[0], int), np.asarray(grid[1], np.float64)
        xs.append(values)
        fig.add_trace(go.Scattergl(x=values, y=elbo[idx], mode="markers", name=f"grid log p(x) ({len(idx)} images)",
                                   marker=dict(size=12, symbol="diamond-open", color=GRID_COLOR, line=dict(width=2)),
                                   hovertemplate="grid log p(x) = %{x:.2f}<br>ELBO = %{y:.2f}<extra></extra>"))
    allv = np.concatenate([v[np.isfinite(v)] for v in xs])
    lo, hi = float(allv.min()), float(allv.max())
    pad = 0.03 * (hi - lo) + 1e-6
    fig.add_trace(go.Scatter(x=[lo - pad, hi + pad], y=[lo - pad, hi + pad], mode="lines", name="y = x (no gap)",
                             line=dict(color="#555", dash="dash"), hoverinfo="skip"))
    fig.update_xaxes(title_text="log p(x), nats")
    fig.update_yaxes(title_text="ELBO, nats")
    return _base_layout(fig, height)


def gap_histogram(gap, exact_gap=None, grid_gap=None, height: int = 380) -> go.Figure:
    """Histogram of log p̂(x) − ELBO = KL(q(z|x) ‖ p(z|x)) ≥ 0 per image, with its mean."""
    gap = np.asarray(gap, np.float64)
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=gap, name="importance sampling", marker_color=LOGPX_COLOR, opacity=0.75,
                               nbinsx=40, bingroup="gap", hovertemplate="gap %{x}: %{y} images<extra></extra>"))
    if exact_gap is not None:  # same bins (bingroup), so the two histograms compare bar by bar
        fig.add_trace(go.Histogram(x=np.asarray(exact_gap, np.float64), name="exact (closed form)",
                                   marker_color=EXACT_COLOR, opacity=0.5, nbinsx=40, bingroup="gap"))
    if grid_gap is not None:
        g = np.asarray(grid_gap, np.float64)
        fig.add_trace(go.Scatter(x=g, y=np.zeros(len(g)), mode="markers", name=f"grid ({len(g)} images)",
                                 marker=dict(symbol="line-ns-open", size=18, color=GRID_COLOR, line=dict(width=2))))
    mean = float(np.mean(gap))
    fig.add_vline(x=mean, line=dict(color="#000", dash="dash"), annotation_text=f"mean {mean:.2f} nats",
                  annotation_position="top right")
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title_text="gap = log p(x) − ELBO, nats")
    fig.update_yaxes(title_text="images")
    return _base_layout(fig, height)


def iwae_curve(ks, mean, mc_stderr, elbo_mean: float, log_px_mean: float | None = None,
               exact_mean: float | None = None, subset=None, height: int = 420) -> go.Figure:
    """The IWAE bound L_k (mean over images) against k on a log axis, with MC error bars.

    L_1 is the ELBO; L_k rises with k toward log p(x). subset: optional dict with keys ks, mean,
    mc_stderr, grid_mean, n for the same curve on the first n images and their grid log p(x)."""
    fig = go.Figure()
    ks = list(ks)
    fig.add_trace(go.Scatter(x=ks, y=list(mean), mode="lines+markers", name="IWAE bound L_k",
                             error_y=dict(type="data", array=list(mc_stderr), visible=True, thickness=1.5),
                             line=dict(color=LOGPX_COLOR, width=2.5), marker=dict(size=8),
                             hovertemplate="k = %{x}: L_k = %{y:.3f}<extra></extra>"))

    def hline(y, name, color, dash):
        fig.add_trace(go.Scatter(x=[ks[0], ks[-1]], y=[y, y], mode="lines", name=name,
                                 line=dict(color=color, dash=dash, width=2), hovertemplate=f"{name}: %{{y:.3f}}<extra></extra>"))

    hline(elbo_mean, "ELBO (analytic KL)", ELBO_COLOR, "dot")
    if log_px_mean is not None:
        hline(log_px_mean, f"log p̂(x), K = {ks[-1]}", LOGPX_COLOR, "dash")
    if exact_mean is not None:
        hline(exact_mean, "exact log p(x)", EXACT_COLOR, "solid")
    if subset is not None:
        fig.add_trace(go.Scatter(x=list(subset["ks"]), y=list(subset["mean"]), mode="lines+markers",
                                 name=f"L_k, first {subset['n']} images",
                                 error_y=dict(type="data", array=list(subset["mc_stderr"]), visible=True),
                                 line=dict(color=GRID_COLOR, width=1.5), marker=dict(size=6)))
        hline(subset["grid_mean"], f"grid log p(x), first {subset['n']} images", GRID_COLOR, "solid")
    fig.update_xaxes(type="log", title_text="k (importance samples per image)", tickvals=ks)
    fig.update_yaxes(title_text="nats / image (mean over images)")
    return _base_layout(fig, height)

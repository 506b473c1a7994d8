"""Plotly figures for the pages beyond the anchors: the true posterior, the prior as a proposal,
the latent map with its decoded manifold, and runs compared. Plain arrays in, go.Figure out."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .plots import (CLASS_COLORS, ELBO_COLOR, EXACT_COLOR, LOGPX_COLOR, _base_layout, class_color,
                    smooth)

Q_COLOR, PRIOR_COLOR, MARK_COLOR, CLICK_COLOR = "#e8590c", "#868e96", "#c2255c", "#2b8a3e"
PROPOSAL_COLORS = {"prior": "#868e96", "posterior": LOGPX_COLOR}
PROPOSAL_NAMES = {"prior": "prior p(z)", "posterior": "encoder q(z|x)"}
LOG_FLOOR = 15.0  # the log-density view shows the top 15 nats (a factor e¹⁵ ≈ 3·10⁶ below the peak)


# -- the true posterior of a 2-D latent ---------------------------------------------------------------
def ellipse(center, scale, k: float, points: int = 73) -> np.ndarray:
    """(points, 2): the k-σ contour of N(center, diag scale²), an axis-aligned ellipse."""
    t = np.linspace(0, 2 * np.pi, points)
    return np.asarray(center, np.float64) + k * np.asarray(scale, np.float64) * np.stack([np.cos(t), np.sin(t)], 1)


def posterior_map(z1, z2, log_posterior, q_loc, q_scale, samples=None, marks=(), clicked=(),
                  view: str = "density", click_step: int = 4, height: int = 640) -> go.Figure:
    """p(z|x) on the grid (rows z2, columns z1) as a heat map, q(z|x) over it (1σ and 2σ ellipses,
    mean, samples), the prior's 1-, 2- and 3-σ circles, and labelled points (marks: (label, z)).

    view "density" colours p(z|x) itself; "log" colours log p(z|x) over its top LOG_FLOOR nats,
    where a second, weaker mode shows. An invisible scatter over every click_step-th grid point
    makes the whole map clickable: clicking selects the grid point, whose z is in customdata."""
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    lp = np.asarray(log_posterior, np.float64)
    if view == "log":
        values, label = np.maximum(lp, lp.max() - LOG_FLOOR), "log p(z|x)"
    elif view == "density":
        values, label = np.exp(lp), "p(z|x)"
    else:
        raise ValueError(f"view must be 'density' or 'log'; got {view!r}")
    fig = go.Figure()
    fig.add_trace(go.Heatmap(x=z1, y=z2, z=values, colorscale="Blues", name="true posterior p(z|x)",
                             colorbar=dict(title=dict(text=label, side="right"), thickness=14, len=0.8),
                             hovertemplate="z = (%{x:.3f}, %{y:.3f})<br>" + label + " = %{z:.3g}<extra></extra>"))
    for r in (1, 2, 3):
        c = ellipse((0, 0), (1, 1), r, 181)
        fig.add_trace(go.Scatter(x=c[:, 0], y=c[:, 1], mode="lines", name="prior p(z): 1σ, 2σ, 3σ circles",
                                 legendgroup="prior", showlegend=r == 1, hoverinfo="skip",
                                 line=dict(color=PRIOR_COLOR, dash="dot", width=1.5)))
    for k, dash in ((1, "solid"), (2, "dash")):
        e = ellipse(q_loc, q_scale, k)
        fig.add_trace(go.Scatter(x=e[:, 0], y=e[:, 1], mode="lines", name=f"q(z|x), {k}σ",
                                 line=dict(color=Q_COLOR, width=2.5, dash=dash), hoverinfo="skip"))
    s = np.zeros((0, 2)) if samples is None else np.asarray(samples, np.float64).reshape(-1, 2)
    fig.add_trace(go.Scatter(x=s[:, 0], y=s[:, 1], mode="markers", name=f"{len(s)} samples z ~ q(z|x)",
                             showlegend=bool(len(s)), hoverinfo="skip",
                             marker=dict(size=5, color=Q_COLOR, line=dict(color="white", width=0.5))))
    fig.add_trace(go.Scatter(x=[q_loc[0]], y=[q_loc[1]], mode="markers", name="mean of q(z|x)",
                             marker=dict(symbol="x", size=12, color=Q_COLOR, line=dict(color="white", width=1)),
                             hovertemplate="mean of q: (%{x:.3f}, %{y:.3f})<extra></extra>"))
    # Always both traces, even empty: a selection refers to traces by number, which must not shift.
    for points, color, name in ((marks, MARK_COLOR, "marked points"), (clicked, CLICK_COLOR, "clicked points")):
        labels = [str(p[0]) for p in points]
        zs = np.asarray([p[1] for p in points], np.float64).reshape(-1, 2)
        fig.add_trace(go.Scatter(x=zs[:, 0], y=zs[:, 1], mode="markers+text", text=labels, name=name,
                                 showlegend=bool(len(points)),  # q's label below its mark, a mode's above
                                 textposition=["bottom center" if lab == "q" else "top center" for lab in labels],
                                 textfont=dict(color=color, size=14),
                                 marker=dict(size=11, color="white", line=dict(color=color, width=2.5)),
                                 hovertemplate="%{text}: (%{x:.3f}, %{y:.3f})<extra></extra>"))
    g1, g2 = np.meshgrid(z1[::click_step], z2[::click_step])
    fig.add_trace(go.Scatter(x=g1.ravel(), y=g2.ravel(), mode="markers", name="click target", showlegend=False,
                             marker=dict(size=8, opacity=0), selected=dict(marker=dict(opacity=0)),
                             unselected=dict(marker=dict(opacity=0)),
                             customdata=np.stack([g1.ravel(), g2.ravel()], 1),
                             hovertemplate="z = (%{x:.3f}, %{y:.3f}): click to decode<extra></extra>"))
    # equal scales on both axes; the plot area shrinks to the grid's box rather than showing past it
    fig.update_xaxes(title_text="z₁", range=[z1[0], z1[-1]], zeroline=False, showgrid=False, constrain="domain")
    fig.update_yaxes(title_text="z₂", range=[z2[0], z2[-1]], zeroline=False, showgrid=False,
                     scaleanchor="x", scaleratio=1, constrain="domain")
    _base_layout(fig, height)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.12, x=0, xanchor="left"),
                      clickmode="event+select", plot_bgcolor="white")
    return fig


def selected_latents(event) -> list[tuple[float, float]]:
    """The z of each point in a plotly selection event of posterior_map (the click targets carry
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


# -- importance sampling with the prior as the proposal ---------------------------------------------------
def proposal_comparison(study, reference: float | None = None, reference_name: str = "",
                        height: int = 430) -> go.Figure:
    """Two panels against k (log axis): log p̂_k(x) for each proposal (mean ± one standard deviation over
    repeats, each repeat a faint dot), and the effective sample size (Σw)²/Σw² beside the line ESS = k."""
    ks = np.asarray(study.ks, np.float64)
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1, subplot_titles=(
        "log p̂(x) = log (1/k) Σ w_i, over repeats", "effective sample size of the k weights"))
    for proposal, est in study.log_px.items():
        color, name = PROPOSAL_COLORS.get(proposal, "#000"), PROPOSAL_NAMES.get(proposal, proposal)
        s = study.summary(proposal)
        jitter = np.exp(np.linspace(-0.08, 0.08, study.repeats))
        fig.add_trace(go.Scatter(x=(ks[None, :] * jitter[:, None]).ravel(), y=est.ravel(), mode="markers",
                                 marker=dict(size=5, color=color, opacity=0.35), name=f"{name}: each repeat",
                                 legendgroup=proposal, hovertemplate="k = %{x:.0f}: %{y:.2f}<extra></extra>"),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=ks, y=s["mean"], mode="lines+markers", name=f"{name}: mean ± sd",
                                 legendgroup=proposal, line=dict(color=color, width=2.5), marker=dict(size=8),
                                 error_y=dict(type="data", array=np.nan_to_num(s["std"]), visible=True),
                                 hovertemplate="k = %{x}: mean %{y:.2f}<extra>" + name + "</extra>"), row=1, col=1)
        fig.add_trace(go.Scatter(x=ks, y=s["ess_mean"], mode="lines+markers", name=f"{name}: ESS",
                                 legendgroup=proposal, showlegend=False, line=dict(color=color, width=2.5),
                                 marker=dict(size=8),
                                 hovertemplate="k = %{x}: ESS %{y:.2f}<extra>" + name + "</extra>"),
                      row=1, col=2)
    fig.add_trace(go.Scatter(x=ks, y=ks, mode="lines", name="ESS = k (perfect proposal)",
                             line=dict(color="#555", dash="dash"), hoverinfo="skip"), row=1, col=2)
    if reference is not None:
        fig.add_trace(go.Scatter(x=[ks[0], ks[-1]], y=[reference, reference], mode="lines",
                                 name=reference_name or "reference log p(x)", line=dict(color=EXACT_COLOR, width=2),
                                 hovertemplate="%{y:.2f}<extra>reference</extra>"), row=1, col=1)
        # the prior's first estimates lie hundreds of nats below: keep the reference region readable
        means = np.concatenate([study.summary(p)["mean"] for p in study.log_px])
        lo = min(float(np.nanmin(means[np.isfinite(means)])), reference - 5)
        lo = max(lo, reference - 150)
        fig.update_yaxes(range=[lo, reference + 0.1 * (reference - lo) + 1], row=1, col=1)
    fig.update_xaxes(type="log", title_text="k, samples")
    fig.update_yaxes(title_text="nats", row=1, col=1)
    fig.update_yaxes(type="log", title_text="ESS", dtick=1, row=1, col=2)  # one tick per decade
    fig.update_annotations(font_size=13)
    _base_layout(fig, height)
    fig.update_layout(legend=dict(y=-0.22))
    return fig


# -- the latent space -------------------------------------------------------------------------------------
def latent_points(points, labels, class_names=(), indices=None, selected=(), axis_titles=("z₁", "z₂"),
                  height: int = 600) -> go.Figure:
    """Latent means (N, 2) coloured by class; each point's test index in customdata (a selection
    names the images); `selected` indices ringed."""
    points = np.asarray(points, np.float64)
    labels = np.zeros(len(points), int) if labels is None else np.asarray(labels)
    indices = np.arange(len(points)) if indices is None else np.asarray(indices)
    fig = go.Figure()
    for c in np.unique(labels):
        sel = labels == c
        name = class_names[c] if 0 <= c < len(class_names) else str(c)
        fig.add_trace(go.Scattergl(x=points[sel, 0], y=points[sel, 1], mode="markers", name=name,
                                   customdata=indices[sel], marker=dict(size=5, color=class_color(c), opacity=0.6),
                                   hovertemplate=f"#%{{customdata}} {name}<br>(%{{x:.2f}}, %{{y:.2f}})<extra></extra>"))
    chosen = np.isin(indices, np.asarray(list(selected), int))
    if chosen.any():
        fig.add_trace(go.Scatter(x=points[chosen, 0], y=points[chosen, 1], mode="markers", name="shown beside",
                                 marker=dict(size=12, color="rgba(0,0,0,0)", line=dict(color="#000", width=2)),
                                 hoverinfo="skip"))
    fig.update_xaxes(title_text=axis_titles[0], zeroline=False)
    fig.update_yaxes(title_text=axis_titles[1], zeroline=False, scaleanchor="x", scaleratio=1)
    _base_layout(fig, height)
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1, x=1.02, xanchor="left", itemsizing="constant"),
                      clickmode="event+select", dragmode="lasso")
    return fig


def selected_indices(event) -> list[int]:
    """Test indices (customdata) of the points in a latent_points selection event, in order, once each."""
    out = []
    for p in ((event or {}).get("selection") or {}).get("points") or []:
        cd = p.get("customdata")
        cd = cd[0] if isinstance(cd, (list, tuple)) and cd else cd
        if isinstance(cd, (int, float)) and int(cd) not in out:
            out.append(int(cd))
    return out


def mosaic(images) -> np.ndarray:
    """(rows, cols, H, W) → one (rows·H, cols·W) image, row 0 at the top."""
    images = np.asarray(images, np.float64)
    rows, cols, h, w = images.shape
    return images.transpose(0, 2, 1, 3).reshape(rows * h, cols * w)


def manifold(images, u1, u2, axis_titles=("z₁", "z₂"), height: int = 640) -> go.Figure:
    """Decoded images on a grid of codes as one picture. images (n2, n1, H, W): row i decodes u2[i]
    (u2 ascending, drawn bottom to top like a z₂ axis), column j decodes u1[j]."""
    images = np.asarray(images, np.float64)[::-1]  # top row = largest u2
    n2, n1, h, w = images.shape
    big = mosaic(images)
    fig = go.Figure(go.Heatmap(z=np.round(big, 3), colorscale="gray", zmin=0, zmax=1, showscale=False,
                               hovertemplate="%{z:.2f}<extra></extra>"))
    fig.update_xaxes(tickvals=[(j + 0.5) * w - 0.5 for j in range(n1)], ticktext=[f"{v:.2f}" for v in u1],
                     title_text=axis_titles[0], constrain="domain", showgrid=False)
    fig.update_yaxes(tickvals=[(i + 0.5) * h - 0.5 for i in range(n2)], ticktext=[f"{v:.2f}" for v in u2[::-1]],
                     title_text=axis_titles[1], autorange="reversed", scaleanchor="x", constrain="domain",
                     showgrid=False)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white")
    return fig


# -- runs compared ----------------------------------------------------------------------------------------
RUN_COLORS = CLASS_COLORS


def compare_curves(histories: dict, steps_per_epoch: dict, height: int = 380) -> go.Figure:
    """ELBO, reconstruction and KL against epochs for several runs on shared axes: per-step training
    values smoothed (lines), test set after each epoch (markers)."""
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.07, shared_xaxes=True, subplot_titles=(
        "ELBO", "reconstruction  E_q[log p(x|z)]", "KL(q(z|x) ‖ p(z))"))
    test_keys = ("test_elbo", "test_recon", "test_kl")
    for i, (name, h) in enumerate(histories.items()):
        color = RUN_COLORS[i % len(RUN_COLORS)]
        steps = np.asarray(h.get("steps") or [], np.float64).reshape(-1, 4)
        x = steps[:, 0] / max(int(steps_per_epoch.get(name, 1)), 1)
        window = int(np.clip(len(steps) // 25, 1, 50))
        epochs = h.get("epochs") or []
        for j in range(3):
            if len(steps):
                fig.add_trace(go.Scatter(x=x, y=smooth(steps[:, j + 1], window), mode="lines", name=f"{name} (train)",
                                         legendgroup=name, showlegend=j == 0, line=dict(color=color, width=2),
                                         hovertemplate="epoch %{x:.2f}: %{y:.2f}<extra>" + name + " train</extra>"),
                              row=1, col=j + 1)
            ep = [e for e in epochs if e.get(test_keys[j]) is not None]
            if ep:
                fig.add_trace(go.Scatter(x=[e["epoch"] for e in ep], y=[e[test_keys[j]] for e in ep],
                                         mode="markers", name=f"{name} (test)", legendgroup=name,
                                         showlegend=j == 0, marker=dict(size=9, color=color, symbol="diamond",
                                                                       line=dict(color="white", width=1)),
                                         hovertemplate="epoch %{x}: %{y:.2f}<extra>" + name + " test</extra>"),
                              row=1, col=j + 1)
    # zoom on the later 95 % of training: the first steps lie far below
    for j in range(3):
        tails = []
        for h in histories.values():
            steps = np.asarray(h.get("steps") or [], np.float64).reshape(-1, 4)
            if len(steps):
                tails.append(steps[len(steps) // 20:, j + 1])
            tails.append(np.array([e[test_keys[j]] for e in h.get("epochs") or [] if e.get(test_keys[j]) is not None]))
        allv = np.concatenate([t for t in tails if len(t)]) if any(len(t) for t in tails) else np.zeros(0)
        if len(allv):
            lo, hi = float(allv.min()), float(allv.max())
            pad = 0.06 * (hi - lo) + 1e-6
            fig.update_yaxes(range=[lo - pad, hi + pad], row=1, col=j + 1)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="nats / image", row=1, col=1)
    fig.update_annotations(font_size=13)
    _base_layout(fig, height)
    fig.update_layout(legend=dict(y=-0.25))
    return fig


def compare_finals(names, elbo, log_px=None, log_px_stderr=None, elbo_stderr=None, height: int = 360) -> go.Figure:
    """Final test ELBO of each run and, where estimated, its log p(x): the gap is the distance between."""
    names = list(names)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=names, y=list(elbo), mode="markers", name="ELBO",
                             marker=dict(size=13, color=ELBO_COLOR, symbol="circle"),
                             error_y=None if elbo_stderr is None else dict(type="data", array=list(elbo_stderr)),
                             hovertemplate="%{x}: ELBO %{y:.2f}<extra></extra>"))
    if log_px is not None:
        lp = [np.nan if v is None else v for v in log_px]
        fig.add_trace(go.Scatter(x=names, y=lp, mode="markers", name="log p(x), importance sampling",
                                 marker=dict(size=13, color=LOGPX_COLOR, symbol="diamond"),
                                 error_y=None if log_px_stderr is None else
                                 dict(type="data", array=[0 if v is None else v for v in log_px_stderr]),
                                 hovertemplate="%{x}: log p(x) %{y:.2f}<extra></extra>"))
    allv = np.asarray(list(elbo) + [v for v in (log_px or []) if v is not None], np.float64)
    allv = allv[np.isfinite(allv)]
    if len(allv):  # markers and error bars clear of the frame
        lo, hi = float(allv.min()), float(allv.max())
        pad = 0.15 * (hi - lo) + 1.0
        fig.update_yaxes(range=[lo - pad, hi + pad])
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text="nats / image (higher is better)")
    return _base_layout(fig, height)


def bound_comparison(names, rows: dict, height: int = 380) -> go.Figure:
    """One line per run across the bounds in order (rows: bound label → one value per run), e.g.
    ELBO = L₁ ≤ L₅ ≤ L₅₀ ≤ log p(x): each run's line climbs by its gap."""
    labels = list(rows)
    fig = go.Figure()
    for i, name in enumerate(names):
        ys = [float(rows[label][i]) for label in labels]
        fig.add_trace(go.Scatter(x=labels, y=ys, mode="lines+markers+text", name=str(name),
                                 text=[f"{v:.2f}" for v in ys],  # the higher run's label above, others below
                                 textposition=["top center" if v >= max(map(float, rows[label])) else "bottom center"
                                               for v, label in zip(ys, labels)],
                                 line=dict(color=RUN_COLORS[i % len(RUN_COLORS)], width=2.5), marker=dict(size=10),
                                 hovertemplate="%{x}: %{y:.2f}<extra>" + str(name) + "</extra>"))
    allv = np.asarray([v for vs in rows.values() for v in vs], np.float64)
    lo, hi = float(np.nanmin(allv)), float(np.nanmax(allv))
    pad = 0.15 * (hi - lo) + 0.5
    fig.update_yaxes(range=[lo - pad, hi + pad], title_text="nats / image (mean over images)")
    fig.update_xaxes(type="category")
    return _base_layout(fig, height)


def log10_of_exp(log_value: float) -> str:
    """e^(log_value) as LaTeX m·10^k, for numbers beyond float range (e^(−800) and e^(+800) alike)."""
    e10 = log_value / math.log(10)
    exponent = math.floor(e10)
    return f"{10 ** (e10 - exponent):.2f}\\cdot 10^{{{exponent}}}"

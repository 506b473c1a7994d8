"""log p(x) against its bounds: the ELBO per image, the gap's histogram, the IWAE bounds L_k against k,
runs side by side, and importance sampling with the prior against q as the proposal."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import (ELBO_COLOR, fmt, EXACT_COLOR, GRID_COLOR, LOGPX_COLOR, PROPOSAL_COLORS, PROPOSAL_NAMES, RUN_COLORS,
                    UNRELIABLE_COLOR, base_layout, points_trace)


def elbo_vs_logpx(log_px, elbo, exact=None, grid=None, pareto_k=None, k: int | None = None,
                  elbo_name: str = "ELBO", stderr=None, grid_name: str = "grid log p(x)",
                  height: int = 460) -> go.Figure:
    """Per image: x = importance-sampled log p(x), y = an ELBO estimate (elbo_name says which), with y = x.
    exact: (N,) closed-form log p(x) of the same images; grid: (idx, values) numerical-integration
    log p(x) of images idx; both drawn as rings. pareto_k: (N,) k̂ of each image's weights: the images
    with k̂ > 0.7 are drawn as crosses, the reason on hover (mc_error.reason); stderr: (N,) each log p̂'s
    Monte-Carlo standard error, on hover."""
    from ..mc_error import reason, unreliable

    log_px, elbo = np.asarray(log_px, np.float64), np.asarray(elbo, np.float64)
    fig, markers = go.Figure(), points_trace(len(elbo))
    xs = [log_px, elbo]
    flagged = unreliable(pareto_k) if pareto_k is not None else np.zeros(len(elbo), bool)
    why = [reason(float(v), k or 0) for v in pareto_k] if pareto_k is not None else [""] * len(elbo)
    pm = np.asarray([f" ± {fmt(v)}" if np.isfinite(v) else "" for v in stderr] if stderr is not None
                    else [""] * len(elbo), object)
    # one trace for every image (flagged ones as dark crosses), so that its points are all the images; its legend
    # entries are drawn apart, one per marker (plotly's would show the first image's marker only)
    fig.add_trace(markers(x=log_px, y=elbo, mode="markers", name=f"importance sampling  (log p̂(x), {elbo_name})",
                          showlegend=False,
                          marker=dict(size=np.where(flagged, 8, 6), opacity=0.75,
                                      color=np.where(flagged, UNRELIABLE_COLOR, LOGPX_COLOR),
                                      symbol=np.where(flagged, "x", "circle")),
                          customdata=np.stack([np.arange(len(elbo)), np.asarray(why, object), pm], -1),
                          hovertemplate="image %{customdata[0]}<br>log p̂(x) = %{x:.2f}%{customdata[2]}<br>"
                                        + elbo_name + " = %{y:.2f}<br>%{customdata[1]}<extra></extra>"))
    for shown, symbol, color, label in ((~flagged, "circle", LOGPX_COLOR, f"log p̂(x) vs {elbo_name}"),
                                        (flagged, "x", UNRELIABLE_COLOR, "unreliable: Pareto k̂ > 0.7")):
        if shown.any():
            fig.add_trace(markers(x=[None], y=[None], mode="markers", hoverinfo="skip",
                                  name=f"{label} ({int(shown.sum())} images)",
                                  marker=dict(size=8, color=color, symbol=symbol)))
    if exact is not None:
        exact = np.asarray(exact, np.float64)
        xs.append(exact)
        fig.add_trace(markers(x=exact, y=elbo[:len(exact)], mode="markers", name="exact log p(x) (closed form)",
                              marker=dict(size=11, color="rgba(0,0,0,0)", line=dict(color=EXACT_COLOR, width=2)),
                              hovertemplate="exact log p(x) = %{x:.2f}<br>" + elbo_name
                                            + " = %{y:.2f}<extra></extra>"))
    if grid is not None:
        idx, values = np.asarray(grid[0], int), np.asarray(grid[1], np.float64)
        xs.append(values)
        fig.add_trace(markers(x=values, y=elbo[idx], mode="markers", name=f"{grid_name} ({len(idx)} images)",
                              marker=dict(size=12, symbol="diamond-open", color=GRID_COLOR, line=dict(width=2)),
                              hovertemplate=grid_name + " = %{x:.2f}<br>" + elbo_name
                                            + " = %{y:.2f}<extra></extra>"))
    allv = np.concatenate([v[np.isfinite(v)] for v in xs])
    lo, hi = float(allv.min()), float(allv.max())
    pad = 0.03 * (hi - lo) + 1e-6
    fig.add_trace(go.Scatter(x=[lo - pad, hi + pad], y=[lo - pad, hi + pad], mode="lines", name="y = x (no gap)",
                             line=dict(color="#555", dash="dash"), hoverinfo="skip"))
    fig.update_xaxes(title_text="log p(x), nats")
    fig.update_yaxes(title_text=f"{elbo_name}, nats")
    return base_layout(fig, height)


def gap_histogram(gap, exact_gap=None, grid_gap=None, name: str = "log p̂_K − ELBO, same draws",
                  exact_name: str = "exact KL(q ‖ p(z|x)) (closed form)", grid_name: str = "grid KL(q ‖ p(z|x))",
                  height: int = 380) -> go.Figure:
    """Histogram of an estimate of L_K − ELBO per image (name says which; L_K ≤ log p(x), so it is a lower
    estimate of KL(q(z|x) ‖ p(z|x))), with its mean; exact_gap: the exact KL of the same images, on the same
    bins; grid_gap: the KL integrated on a grid (or a line) for the first images, as ticks."""
    gap = np.asarray(gap, np.float64)
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=gap, name=name, marker_color=LOGPX_COLOR, opacity=0.75,
                               nbinsx=40, bingroup="gap", hovertemplate="gap %{x}: %{y} images<extra></extra>"))
    if exact_gap is not None:  # same bins (bingroup), so the two histograms compare bar by bar
        fig.add_trace(go.Histogram(x=np.asarray(exact_gap, np.float64), name=exact_name,
                                   marker_color=EXACT_COLOR, opacity=0.5, nbinsx=40, bingroup="gap"))
    if grid_gap is not None:
        g = np.asarray(grid_gap, np.float64)
        fig.add_trace(go.Scatter(x=g, y=np.zeros(len(g)), mode="markers", name=f"{grid_name} ({len(g)} images)",
                                 marker=dict(symbol="line-ns-open", size=18, color=GRID_COLOR, line=dict(width=2))))
    mean = float(np.mean(gap))
    fig.add_vline(x=mean, line=dict(color="#000", dash="dash"), annotation_text=f"mean {fmt(mean)} nats",
                  annotation_position="top right")
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title_text="gap per image, nats")
    fig.update_yaxes(title_text="images")
    return base_layout(fig, height)


def iwae_curve(ks, mean, mc_stderr, elbo_mean: float, log_px_mean: float | None = None,
               exact_mean: float | None = None, subset=None, ppca_mean: float | None = None,
               height: int = 420) -> go.Figure:
    """The IWAE bound L_k (mean over images) against k on a log axis, with MC error bars.

    L_1 is the ELBO; L_k rises with k toward log p(x). subset: optional dict with keys ks, mean,
    mc_stderr, grid_mean, n for the same curve on the first n images and their grid log p(x);
    ppca_mean: probabilistic PCA's log p(x) of the same images, the linear-Gaussian optimum."""
    fig = go.Figure()
    ks = list(ks)
    fig.add_trace(go.Scatter(x=ks, y=list(mean), mode="lines+markers", name="IWAE bound L_k",
                             error_y=dict(type="data", array=list(mc_stderr), visible=True, thickness=1.5),
                             line=dict(color=LOGPX_COLOR, width=2.5), marker=dict(size=8),
                             hovertemplate="k = %{x}: L_k = %{y:.3f}<extra></extra>"))

    def hline(y, name, color, dash):
        fig.add_trace(go.Scatter(x=[ks[0], ks[-1]], y=[y, y], mode="lines", name=name,
                                 line=dict(color=color, dash=dash, width=2),
                                 hovertemplate=f"{name}: %{{y:.3f}}<extra></extra>"))

    hline(elbo_mean, "ELBO (analytic KL)", ELBO_COLOR, "dot")
    if log_px_mean is not None:
        hline(log_px_mean, f"log p̂(x), K = {ks[-1]}", LOGPX_COLOR, "dash")
    if exact_mean is not None:
        hline(exact_mean, "exact log p(x)", EXACT_COLOR, "solid")
    if ppca_mean is not None:  # the optimum a linear-Gaussian model can reach (probabilistic PCA)
        hline(ppca_mean, "PPCA maximum likelihood", EXACT_COLOR, "dash")
    if subset is not None:
        fig.add_trace(go.Scatter(x=list(subset["ks"]), y=list(subset["mean"]), mode="lines+markers",
                                 name=f"L_k, first {subset['n']} images",
                                 error_y=dict(type="data", array=list(subset["mc_stderr"]), visible=True),
                                 line=dict(color=GRID_COLOR, width=1.5), marker=dict(size=6)))
        hline(subset["grid_mean"], f"{subset.get('name', 'grid log p(x)')}, first {subset['n']} images", GRID_COLOR,
              "solid")
    fig.update_xaxes(type="log", title_text="k (importance samples per image)", tickvals=ks)
    fig.update_yaxes(title_text="nats / image (mean over images)")
    return base_layout(fig, height)


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
    return base_layout(fig, height)


def bound_comparison(names, rows: dict, height: int = 380) -> go.Figure:
    """One line per run across the bounds in order (rows: bound label → one value per run), e.g.
    ELBO = L₁ ≤ L₅ ≤ L₅₀ ≤ log p(x): each run's line climbs by its gap."""
    labels = list(rows)
    fig = go.Figure()
    for i, name in enumerate(names):
        ys = [float(rows[label][i]) for label in labels]
        fig.add_trace(go.Scatter(x=labels, y=ys, mode="lines+markers+text", name=str(name),
                                 text=[fmt(v) for v in ys],  # the higher run's label above, others below
                                 textposition=["top center" if v >= max(map(float, rows[label])) else "bottom center"
                                               for v, label in zip(ys, labels, strict=True)],
                                 line=dict(color=RUN_COLORS[i % len(RUN_COLORS)], width=2.5), marker=dict(size=10),
                                 hovertemplate="%{x}: %{y:.2f}<extra>" + str(name) + "</extra>"))
    allv = np.asarray([v for vs in rows.values() for v in vs], np.float64)
    lo, hi = float(np.nanmin(allv)), float(np.nanmax(allv))
    pad = 0.15 * (hi - lo) + 0.5
    fig.update_yaxes(range=[lo - pad, hi + pad], title_text="nats / image (mean over images)")
    fig.update_xaxes(type="category")
    return base_layout(fig, height)


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
    base_layout(fig, height)
    fig.update_layout(legend=dict(y=-0.22))
    return fig


def log10_of_exp(log_value: float) -> str:
    """e^(log_value) as LaTeX m·10^k, for numbers beyond float range (e^(−800) and e^(+800) alike)."""
    e10 = log_value / math.log(10)
    exponent = math.floor(e10)
    return f"{10 ** (e10 - exponent):.2f}\\cdot 10^{{{exponent}}}"

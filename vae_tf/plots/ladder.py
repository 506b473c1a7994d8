"""How tight is the bound: the ladder of estimates, the gap's two parts, and AIS and q* over a 2-D posterior."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .posterior import ellipse, posterior_map
from .style import ELBO_COLOR, EXACT_COLOR, LOGPX_COLOR, base_layout

Q_STAR_COLOR, AIS_COLOR, BDMC_COLOR = "#7048e8", "#0c8599", "#495057"
AMORTIZATION_COLOR, APPROXIMATION_COLOR = "#74c0fc", "#1864ab"


def rung_color(name: str) -> str:
    if name.startswith("ELBO("):
        return Q_STAR_COLOR
    if name.startswith("L_"):
        return LOGPX_COLOR
    if name.startswith(("AIS", "reverse")):
        return AIS_COLOR if name.startswith("AIS") else BDMC_COLOR
    return {"ELBO": ELBO_COLOR, "log p(x)": EXACT_COLOR}.get(name, BDMC_COLOR)


def ladder_chart(panels, height: int = 440, sigmas: float = 2.0) -> go.Figure:
    """One panel per (title, rungs): each rung (name, value, stderr, method) a point at its value with bars of
    ±sigmas standard errors, in the order given (low to high in expectation), each panel on its own y scale.
    The last rung of a panel is drawn across it as a dashed line, to read the others against."""
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for t, _ in panels], horizontal_spacing=0.07)
    for col, (_, rungs) in enumerate(panels, start=1):
        if not rungs:
            continue
        for r in rungs:
            fig.add_trace(go.Scatter(
                x=[r.name], y=[r.value], mode="markers", name=r.name, legendgroup=r.name, showlegend=False,
                marker=dict(size=11, color=rung_color(r.name), symbol="diamond" if r.stderr == 0 else "circle"),
                error_y=dict(type="data", array=[sigmas * r.stderr], thickness=2, width=8),
                customdata=[[r.stderr, r.method]],
                hovertemplate=f"{r.name} = %{{y:.3f}} ± %{{customdata[0]:.3f}} (1 SE)<br>%{{customdata[1]}}"
                              "<extra></extra>"), row=1, col=col)
        top = rungs[-1]  # after the traces: plotly leaves a subplot without data out of add_hline
        fig.add_hline(y=top.value, line=dict(color=rung_color(top.name), dash="dash", width=1), row=1, col=col)
        fig.update_yaxes(title_text="nats / image" if col == 1 else None, row=1, col=col)
    base_layout(fig, height, showlegend=False)
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10))
    return fig


def gap_bars(labels, amortization, amortization_se, approximation, approximation_se, reference: str,
             sigmas: float = 2.0, height: int = 380) -> go.Figure:
    """Per image (and any summary bar among the labels): log p(x) − ELBO stacked as the amortization gap
    ELBO(q*) − ELBO and the approximation gap log p(x) − ELBO(q*) (log p(x): `reference`), each with bars of
    ±sigmas standard errors. A negative part (Monte-Carlo noise, or an estimate of log p(x) below ELBO(q*))
    stacks below zero."""
    fig = go.Figure()
    for name, values, se, color in (
            ("amortization gap, ELBO(q*) − ELBO", amortization, amortization_se, AMORTIZATION_COLOR),
            (f"approximation gap, log p(x) − ELBO(q*) (log p(x): {reference})", approximation, approximation_se,
             APPROXIMATION_COLOR)):
        fig.add_trace(go.Bar(x=list(labels), y=np.asarray(values, np.float64), name=name, marker_color=color,
                             error_y=dict(type="data", array=sigmas * np.asarray(se, np.float64), thickness=1.2),
                             customdata=np.asarray(se, np.float64),
                             hovertemplate="%{x}: %{y:.3f} ± %{customdata:.3f} nats (1 SE)<extra></extra>"))
    base_layout(fig, height, barmode="relative")
    fig.update_yaxes(title_text="nats / image")
    fig.update_xaxes(type="category")
    return fig


def ais_on_posterior(z1, z2, log_posterior, q_loc, q_scale, q_star_loc, q_star_tril, ais_z, ais_log_w=None,
                     view: str = "density", height: int = 620) -> go.Figure:
    """posterior_map's p(z|x) with q(z|x) over it, plus q* = N(loc, L Lᵀ) (its 1σ and 2σ ellipses, loc + k L u
    for unit vectors u, and its mean) and the final states of the AIS chains, each sized by its share of the
    importance weight (weighted, they are draws from p(z|x))."""
    fig = posterior_map(z1, z2, log_posterior, q_loc, q_scale, None, view=view, height=height)
    circle = ellipse((0, 0), (1, 1), 1)
    for k, dash in ((1, "solid"), (2, "dash")):
        e = np.asarray(q_star_loc, np.float64) + k * circle @ np.asarray(q_star_tril, np.float64).T
        fig.add_trace(go.Scatter(x=e[:, 0], y=e[:, 1], mode="lines", name=f"q*(z|x), {k}σ", hoverinfo="skip",
                                 line=dict(color=Q_STAR_COLOR, width=2.5, dash=dash)))
    fig.add_trace(go.Scatter(x=[q_star_loc[0]], y=[q_star_loc[1]], mode="markers", name="mean of q*",
                             marker=dict(symbol="x", size=12, color=Q_STAR_COLOR, line=dict(color="white", width=1)),
                             hovertemplate="mean of q*: (%{x:.3f}, %{y:.3f})<extra></extra>"))
    z = np.asarray(ais_z, np.float64).reshape(-1, 2)
    lw = np.zeros(len(z)) if ais_log_w is None else np.asarray(ais_log_w, np.float64)
    share = np.exp(lw - lw.max())
    share /= share.sum()
    fig.add_trace(go.Scatter(x=z[:, 0], y=z[:, 1], mode="markers", name=f"{len(z)} AIS chains, last state",
                             customdata=np.stack([share, lw], 1),
                             marker=dict(size=7 + 14 * np.sqrt(share / share.max()), color=AIS_COLOR,
                                         line=dict(color="white", width=1)),
                             hovertemplate="AIS chain at (%{x:.3f}, %{y:.3f})<br>log w = %{customdata[1]:.2f}, "
                                           "%{customdata[0]:.0%} of the weight<extra></extra>"))
    return fig

"""The true posterior p(z|x) of a 2-D latent on its grid, with q(z|x) and the prior drawn over it."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .style import CLICK_COLOR, MARK_COLOR, PRIOR_COLOR, Q_COLOR, base_layout

LOG_FLOOR = 15.0  # the log-density view shows the top 15 nats (a factor e¹⁵ ≈ 3·10⁶ below the peak)


def ellipse(center, scale, k: float, points: int = 73) -> np.ndarray:
    """(points, 2): the k-σ contour of N(center, diag scale²), an axis-aligned ellipse."""
    t = np.linspace(0, 2 * np.pi, points)
    return np.asarray(center, np.float64) + k * np.asarray(scale, np.float64) * np.stack([np.cos(t), np.sin(t)], 1)


def posterior_map(z1, z2, log_posterior, q_loc, q_scale, samples=None, marks=(), clicked=(),
                  view: str = "density", click_step: int = 8, height: int = 640) -> go.Figure:
    """p(z|x) on the grid (rows z2, columns z1) as a heat map, q(z|x) over it (1σ and 2σ ellipses,
    mean, samples), the prior's 1-, 2- and 3-σ circles, and labelled points (marks: (label, z)).

    view "density" colours p(z|x) itself; "log" colours log p(z|x) over its top LOG_FLOOR nats,
    where a second, weaker mode shows. An invisible scatter over every click_step-th grid point
    makes the whole map clickable: clicking selects the grid point, whose z is in customdata. A click
    picks the nearest target within plotly's 20 px, so targets 8 grid points apart (about 25 px on a
    201-point grid) still cover the map; every target is an SVG marker the browser draws, so a finer net
    of them is paid for on every visit of the page."""
    z1, z2 = np.asarray(z1, np.float64), np.asarray(z2, np.float64)
    lp = np.asarray(log_posterior, np.float64)
    if view == "log":
        values, label = np.maximum(lp, lp.max() - LOG_FLOOR), "log p(z|x)"
    elif view == "density":
        values, label = np.exp(lp), "p(z|x)"
    else:
        raise ValueError(f"view must be 'density' or 'log'; got {view!r}")
    fig = go.Figure()
    # float32: what the colours and a 3-digit hover need, half of float64's bytes to send and parse
    fig.add_trace(go.Heatmap(x=z1, y=z2, z=values.astype(np.float32), colorscale="Blues", name="true posterior p(z|x)",
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
    base_layout(fig, height)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.12, x=0, xanchor="left"),
                      clickmode="event+select", plot_bgcolor="white")
    return fig

"""The latent diagnostics as figures: KL per dimension, the split of the average KL into I(x; z) and the
marginal KL, traversals, the PPCA spectrum of a linear VAE, and the curves of a β sweep."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .images import mosaic, picture
from .style import ELBO_COLOR, EXACT_COLOR, LOGPX_COLOR, MARK_COLOR, PRIOR_COLOR, base_layout

ACTIVE_COLOR, COLLAPSED_COLOR = ELBO_COLOR, PRIOR_COLOR
UNITS_COLOR = "#7048e8"  # the count of active units: not the ELBO's blue, which shares the log p(x) panel


def kl_per_dim_bars(kl, stderr, activity, threshold: float, height: int = 340) -> go.Figure:
    """Bars of the mean KL(q(z_j|x) ‖ p(z_j)) per dimension, largest first, coloured by activity
    A_j = Var_x E_q[z_j] against the threshold; error bars are ±1 standard error over images."""
    kl, stderr, activity = (np.asarray(a, np.float64) for a in (kl, stderr, activity))
    order = np.argsort(-kl, kind="stable")
    labels = [f"z{j + 1}" for j in order]
    fig = go.Figure()
    for active, name, color in ((True, f"active (A > {threshold:g})", ACTIVE_COLOR),
                                (False, f"inactive (A ≤ {threshold:g})", COLLAPSED_COLOR)):
        pick = [i for i, j in enumerate(order) if (activity[j] > threshold) == active]
        if not pick:
            continue
        fig.add_trace(go.Bar(
            x=[labels[i] for i in pick], y=kl[order[pick]], name=name, marker_color=color,
            text=[f"{v:.2f}" if v >= 0.095 else f"{v:.3f}" for v in kl[order[pick]]], textposition="outside",
            textfont=dict(size=10, color=color), cliponaxis=False,
            error_y=dict(type="data", array=stderr[order[pick]], visible=True, color="#333", thickness=1),
            customdata=np.stack([activity[order[pick]], stderr[order[pick]]], 1),
            hovertemplate="%{x}: KL %{y:.3f} ± %{customdata[1]:.3f} nats<br>A = Var_x E_q[z] = "
                          "%{customdata[0]:.4f}<extra></extra>"))
    fig.update_xaxes(categoryorder="array", categoryarray=labels, title_text="latent dimension, by KL")
    fig.update_yaxes(title_text="mean KL(q(z_j|x) ‖ p(z_j)), nats", rangemode="tozero")
    return base_layout(fig, height, bargap=0.15)


def information_split(kl: float, info: float, info_se: float, marginal: float, marginal_se: float,
                      log_n: float, height: int = 260) -> go.Figure:
    """Two horizontal bars: the exact average KL, and beside it I(x; z) + KL(q(z) ‖ p(z)) stacked, each
    with its ±1 standard error; a dotted line at log N, the ceiling of I over N images."""
    fig = go.Figure()
    rows = ["average KL(q(z|x) ‖ p(z))", "I(x; z) + KL(q(z) ‖ p(z))"]
    fig.add_trace(go.Bar(y=[rows[0]], x=[kl], orientation="h", name="average KL (exact)", marker_color=EXACT_COLOR,
                         hovertemplate="average KL %{x:.3f} nats (exact)<extra></extra>"))
    fig.add_trace(go.Bar(y=[rows[1]], x=[info], orientation="h", name="I(x; z)", marker_color=ELBO_COLOR,
                         error_x=dict(type="data", array=[info_se], visible=True, color="#333"),
                         hovertemplate=f"I(x; z) %{{x:.3f}} ± {info_se:.3f} nats<extra></extra>"))
    fig.add_trace(go.Bar(y=[rows[1]], x=[marginal], orientation="h", name="KL(q(z) ‖ p(z))", base=[info],
                         marker_color=LOGPX_COLOR,
                         error_x=dict(type="data", array=[marginal_se], visible=True, color="#333"),
                         hovertemplate=f"KL(q(z) ‖ p(z)) %{{x:.3f}} ± {marginal_se:.3f} nats<extra></extra>"))
    fig.add_vline(x=log_n, line_dash="dot", line_color=MARK_COLOR,
                  annotation_text=f"log N = {log_n:.2f}", annotation_position="top")
    fig.update_xaxes(title_text="nats / image", rangemode="tozero")
    fig.update_yaxes(autorange="reversed")
    base_layout(fig, height, barmode="overlay")
    fig.update_layout(margin=dict(l=10, r=10, t=40, b=10), legend=dict(y=-0.35))
    return fig


def traversal_mosaic(images, values, row_labels, height: int | None = None) -> go.Figure:
    """One picture: row i decodes the image's posterior mean with dimension i of the rows swept over
    `values` (columns). images: (rows, len(values), H, W)."""
    images = np.asarray(images, np.float64)
    rows, cols, h, w = images.shape
    fig = go.Figure(picture(mosaic(images)))
    fig.update_xaxes(tickvals=[(j + 0.5) * w - 0.5 for j in range(cols)], ticktext=[f"{v:+.1f}" for v in values],
                     title_text="value of the swept dimension z_j (the others at the posterior mean)",
                     constrain="domain", showgrid=False, side="bottom")
    fig.update_yaxes(tickvals=[(i + 0.5) * h - 0.5 for i in range(rows)], ticktext=list(row_labels),
                     autorange="reversed", scaleanchor="x", constrain="domain", showgrid=False)
    fig.update_layout(height=height or max(220, 64 * rows + 70), margin=dict(l=10, r=10, t=10, b=10),
                      plot_bgcolor="white", font=dict(size=12))
    return fig


def ppca_spectrum(eigenvalues, sigma2: float, kl, ppca_kl, shown: int = 60, height: int = 360) -> go.Figure:
    """Left: the largest eigenvalues λ_j of the data covariance (log scale) against the noise σ²; right: the
    run's KL per dimension (sorted) beside probabilistic PCA's ½ log(λ_j/σ²) for λ_j > σ², else 0."""
    lam = np.asarray(eigenvalues, np.float64)[:shown]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.09, subplot_titles=(
        "eigenvalues of the data covariance", "KL per dimension: the run and PPCA's optimum"))
    j = np.arange(1, len(lam) + 1)
    above = lam > sigma2
    fig.add_trace(go.Scatter(x=j[above], y=lam[above], mode="markers", name="λ_j > σ² (signal)",
                             marker=dict(color=ACTIVE_COLOR, size=6)), row=1, col=1)
    fig.add_trace(go.Scatter(x=j[~above], y=lam[~above], mode="markers", name="λ_j ≤ σ² (below the noise)",
                             marker=dict(color=COLLAPSED_COLOR, size=6)), row=1, col=1)
    fig.add_trace(go.Scatter(x=[1, len(lam)], y=[sigma2, sigma2], mode="lines", name=f"σ² = {sigma2:.4g}",
                             line=dict(color=MARK_COLOR, dash="dash")), row=1, col=1)
    kl = np.sort(np.asarray(kl, np.float64))[::-1]
    d = np.arange(1, len(kl) + 1)
    fig.add_trace(go.Bar(x=d, y=kl, name="this run's KL (sorted)", marker_color=ELBO_COLOR, opacity=0.8),
                  row=1, col=2)
    fig.add_trace(go.Scatter(x=d, y=np.asarray(ppca_kl, np.float64), mode="lines+markers",
                             name="PPCA: ½ log(λ_j/σ²)", line=dict(color=EXACT_COLOR)), row=1, col=2)
    fig.update_yaxes(type="log", title_text="variance (grey levels²)", row=1, col=1)
    fig.update_yaxes(title_text="nats", row=1, col=2)
    fig.update_xaxes(title_text="j (largest first)")
    fig.update_annotations(font_size=13)
    base_layout(fig, height)
    fig.update_layout(legend=dict(y=-0.25), margin=dict(t=40))
    return fig


SWEEP_PANELS = ("active units", "average KL(q(z|x) ‖ p(z))", "reconstruction E_q[log p(x|z)]", "log p(x) and ELBO")


def beta_sweep_curves(rows: list[dict], latent_dim: int, height: int = 640) -> go.Figure:
    """Four panels against β (log axis): active units, the average KL (with I(x; z) beneath it), the
    reconstruction term, and log p(x) with the ELBO; error bars ±1 standard error. rows: one dict per β
    with beta, active_units, kl, kl_se, mutual_information, mutual_information_se, recon, recon_se, elbo,
    elbo_se, log_px, log_px_se."""
    rows = sorted(rows, key=lambda r: r["beta"])
    b = [r["beta"] for r in rows]
    col = lambda key: [r[key] for r in rows]  # noqa: E731
    err = lambda key: dict(type="data", array=col(key), visible=True)  # noqa: E731
    fig = make_subplots(rows=2, cols=2, subplot_titles=SWEEP_PANELS, vertical_spacing=0.22, horizontal_spacing=0.1)
    fig.add_trace(go.Scatter(x=b, y=col("active_units"), mode="lines+markers", name="active units",
                             line=dict(color=UNITS_COLOR)), row=1, col=1)
    fig.add_trace(go.Scatter(x=b, y=col("kl"), error_y=err("kl_se"), mode="lines+markers", name="average KL",
                             line=dict(color=EXACT_COLOR)), row=1, col=2)
    fig.add_trace(go.Scatter(x=b, y=col("mutual_information"), error_y=err("mutual_information_se"),
                             mode="lines+markers", name="I(x; z)", line=dict(color=ELBO_COLOR, dash="dot")),
                  row=1, col=2)
    fig.add_trace(go.Scatter(x=b, y=col("recon"), error_y=err("recon_se"), mode="lines+markers",
                             name="reconstruction", line=dict(color=MARK_COLOR)), row=2, col=1)
    fig.add_trace(go.Scatter(x=b, y=col("log_px"), error_y=err("log_px_se"), mode="lines+markers",
                             name="log p(x) (importance sampling)", line=dict(color=LOGPX_COLOR)), row=2, col=2)
    fig.add_trace(go.Scatter(x=b, y=col("elbo"), error_y=err("elbo_se"), mode="lines+markers", name="ELBO",
                             line=dict(color=ELBO_COLOR)), row=2, col=2)
    fig.update_xaxes(type="log", title_text="β", tickvals=b, ticktext=[f"{v:g}" for v in b])
    fig.update_yaxes(range=[-0.3, latent_dim + 0.3], title_text=f"of {latent_dim}", row=1, col=1)
    for r, c in ((1, 2), (2, 1), (2, 2)):
        fig.update_yaxes(title_text="nats / image", row=r, col=c)
    fig.update_annotations(font_size=13)
    base_layout(fig, height)
    fig.update_layout(legend=dict(y=-0.14), margin=dict(t=70))  # panel titles below plotly's toolbar
    return fig

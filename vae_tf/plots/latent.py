"""The latent space as figures: test images' latent means by class, paths through it, and the
length of those paths (a 1-D latent drawn as strips)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .style import PATH_COLORS, base_layout, class_color, points_trace

MAX_LEGEND_CLASSES = 20  # more classes: one trace, coloured by class number, without a legend entry each


def latent_map(points, labels, class_names=(), paths=None, endpoints=None,
               axis_titles=("z₁", "z₂"), height: int = 520) -> go.Figure:
    """Latent means of test images (points (N, 2)), coloured by class, with paths (m, 2) on top."""
    points = np.asarray(points, np.float64)
    fig = go.Figure()
    labels = np.zeros(len(points), int) if labels is None else np.asarray(labels)
    classes, markers = np.unique(labels), points_trace(len(points))
    if len(classes) > MAX_LEGEND_CLASSES:
        # One trace coloured by class number: a trace (and a legend entry) per class froze the browser for a
        # minute with a data set of 1,000 classes.
        fig.add_trace(markers(x=points[:, 0], y=points[:, 1], mode="markers", name=f"{len(classes)} classes",
                              marker=dict(size=4, color=labels, colorscale="Turbo", opacity=0.55,
                                          colorbar=dict(title="class", thickness=12)),
                              customdata=labels, hovertemplate="class %{customdata}<br>(%{x:.2f}, %{y:.2f})"
                                                               "<extra></extra>"))
    for c in classes if len(classes) <= MAX_LEGEND_CLASSES else ():
        sel = labels == c
        name = class_names[c] if 0 <= c < len(class_names) else str(c)
        fig.add_trace(markers(x=points[sel, 0], y=points[sel, 1], mode="markers", name=name,
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
        # the letter inside its ring: above it, it sat on the paths leaving the end
        fig.add_trace(go.Scatter(x=e[:, 0], y=e[:, 1], mode="markers+text", text=["A", "B"][:len(e)],
                                 textposition="middle center", textfont=dict(size=13, color="#000"),
                                 marker=dict(size=24, color="white", line=dict(color="#000", width=3)),
                                 name="ends A, B", hoverinfo="skip", cliponaxis=False))
    fig.update_xaxes(title_text=axis_titles[0], zeroline=False)
    fig.update_yaxes(title_text=axis_titles[1], zeroline=False, scaleanchor="x", scaleratio=1)
    base_layout(fig, height)
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1, x=1.02, xanchor="left", itemsizing="constant"))
    return fig


def latent_axis_1d(z, labels, class_names=(), paths=None, height: int = 420, seed: int = 0) -> go.Figure:
    """A 1-D latent: each class's latent means as a jittered strip, and the paths as rows below."""
    z = np.asarray(z, np.float64).reshape(-1)
    labels = np.zeros(len(z), int) if labels is None else np.asarray(labels)
    jitter = np.random.default_rng(seed).uniform(-0.3, 0.3, len(z))
    fig, markers = go.Figure(), points_trace(len(z))
    classes = list(np.unique(labels))
    for row, c in enumerate(classes):
        sel = labels == c
        name = class_names[c] if 0 <= c < len(class_names) else str(c)
        fig.add_trace(markers(x=z[sel], y=row + jitter[sel], mode="markers", name=name, showlegend=False,
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
    return base_layout(fig, height)


def latent_points(points, labels, class_names=(), indices=None, selected=(), axis_titles=("z₁", "z₂"),
                  height: int = 600) -> go.Figure:
    """Latent means (N, 2) coloured by class; each point's test index in customdata (a selection
    names the images); `selected` indices ringed."""
    points = np.asarray(points, np.float64)
    labels = np.zeros(len(points), int) if labels is None else np.asarray(labels)
    indices = np.arange(len(points)) if indices is None else np.asarray(indices)
    fig, markers = go.Figure(), points_trace(len(points))
    for c in np.unique(labels):
        sel = labels == c
        name = class_names[c] if 0 <= c < len(class_names) else str(c)
        fig.add_trace(markers(x=points[sel, 0], y=points[sel, 1], mode="markers", name=name,
                              customdata=indices[sel], marker=dict(size=5, color=class_color(c), opacity=0.6),
                              hovertemplate=f"#%{{customdata}} {name}<br>(%{{x:.2f}}, %{{y:.2f}})<extra></extra>"))
    chosen = np.isin(indices, np.asarray(list(selected), int))
    if chosen.any():
        fig.add_trace(go.Scatter(x=points[chosen, 0], y=points[chosen, 1], mode="markers", name="shown beside",
                                 marker=dict(size=12, color="rgba(0,0,0,0)", line=dict(color="#000", width=2)),
                                 hoverinfo="skip"))
    fig.update_xaxes(title_text=axis_titles[0], zeroline=False)
    fig.update_yaxes(title_text=axis_titles[1], zeroline=False, scaleanchor="x", scaleratio=1)
    base_layout(fig, height)
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1, x=1.02, xanchor="left", itemsizing="constant"),
                      clickmode="event+select", dragmode="lasso")
    return fig


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
    return base_layout(fig, height)

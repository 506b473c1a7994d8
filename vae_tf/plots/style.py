"""The figures' shared look: colours, font, and the layout every figure starts from.

Units are nats per image throughout the figures.
"""
from __future__ import annotations

import plotly.graph_objects as go

# A qualitative palette with ten well-separated colours (one per Fashion-MNIST class).
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
RUN_COLORS = CLASS_COLORS
PATH_COLORS = {"linear": "#111111", "spherical": "#e8590c"}
ELBO_COLOR, LOGPX_COLOR, EXACT_COLOR, GRID_COLOR = "#4263eb", "#e8590c", "#2b8a3e", "#c2255c"
Q_COLOR, PRIOR_COLOR, MARK_COLOR, CLICK_COLOR = "#e8590c", "#868e96", "#c2255c", "#2b8a3e"
UNRELIABLE_COLOR = "#212529"  # images whose estimate cannot be trusted (Pareto k̂ > 0.7)
PROPOSAL_COLORS = {"prior": "#868e96", "posterior": LOGPX_COLOR}
PROPOSAL_NAMES = {"prior": "prior p(z)", "posterior": "encoder q(z|x)"}
FONT = dict(size=13)
SVG_POINTS = 1000  # markers up to which a scatter is drawn as SVG rather than WebGL


def points_trace(n: int) -> type[go.Scatter] | type[go.Scattergl]:
    """The scatter trace for n markers: SVG up to SVG_POINTS, WebGL beyond. Each WebGL chart sets up its own
    GL context and shaders before it draws a point, which costs more than drawing a few thousand SVG markers,
    most of all in a browser without a GPU, where WebGL runs in software on the visitor's CPU."""
    return go.Scatter if n <= SVG_POINTS else go.Scattergl


def base_layout(fig: go.Figure, height: int, **kw) -> go.Figure:
    """Legend under the plot (the top-right corner belongs to plotly's toolbar)."""
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=30, b=10), font=FONT,
                      legend=dict(orientation="h", yanchor="top", y=-0.2, x=0, xanchor="left"), **kw)
    return fig


def class_color(label: int) -> str:
    return CLASS_COLORS[int(label) % len(CLASS_COLORS)]


def fmt(value: float, digits: int = 2) -> str:
    """A number for a label, never "-0.00": a value that rounds to zero has no sign."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text

"""Images as figures: a grid of images, originals over their reconstructions, and the decoded
manifold of a 2-D grid of codes as one picture."""
from __future__ import annotations

import base64
import io
import math

import numpy as np
import plotly.graph_objects as go


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
    hs, vs = min(0.02, 1 / max(ncols - 1, 1)), min(title_px / height, 1 / max(rows - 1, 1))
    w, h = (1 - hs * (ncols - 1)) / ncols, (1 - vs * (rows - 1)) / rows
    # The layout written out as make_subplots would make it (its cells' domains, its titles' places), as one
    # dict validated once: make_subplots and update_xaxes set each of a grid's hundreds of axis properties
    # through plotly's property machinery one at a time, the largest part of an image page's script run.
    layout, data, annotations = {}, [], []
    for i in range(rows * ncols):
        r, c = divmod(i, ncols)
        s = "" if i == 0 else str(i + 1)
        x0, y1 = c * (w + hs), 1 - r * (h + vs)
        layout[f"xaxis{s}"] = dict(domain=[max(0.0, x0), min(1.0, x0 + w)], anchor=f"y{s}", visible=False,
                                   constrain="domain")
        layout[f"yaxis{s}"] = dict(domain=[max(0.0, y1 - h), min(1.0, y1)], anchor=f"x{s}", visible=False,
                                   autorange="reversed", constrain="domain", scaleanchor=f"x{s}")  # square pixels
        if i < len(titles) and str(titles[i]):
            annotations.append(dict(text=str(titles[i]), x=x0 + w / 2, y=min(1.0, y1), xref="paper", yref="paper",
                                    xanchor="center", yanchor="bottom", showarrow=False,
                                    font=dict(size=12, color="#222")))
        if i < n:
            data.append(dict(type="heatmap", z=np.round(images[i], 3).astype(np.float32), colorscale="gray",
                             zmin=0, zmax=1, showscale=False, name=str(titles[i]) if i < len(titles) else f"image {i}",
                             xaxis=f"x{s}", yaxis=f"y{s}", hovertemplate="row %{y}, col %{x}: %{z:.2f}<extra></extra>"))
    layout.update(annotations=annotations, height=height, margin=dict(l=4, r=4, t=title_px + 2, b=4),
                  plot_bgcolor="white")
    return go.Figure(data=data, layout=layout)


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


def mosaic(images) -> np.ndarray:
    """(rows, cols, H, W) → one (rows·H, cols·W) image, row 0 at the top."""
    images = np.asarray(images, np.float64)
    rows, cols, h, w = images.shape
    return images.transpose(0, 2, 1, 3).reshape(rows * h, cols * w)


def picture(image) -> go.Image:
    """A grey image in [0, 1] (H, W) as one plotly image trace of 8-bit PNG, pixel (i, j) centred at x = j, y = i as
    a heatmap's: a mosaic of hundreds of decoded images drawn as a heatmap sends every grey level as a float and
    the browser paints each cell; a PNG is a small fraction of those bytes and one image to draw. NaN is white."""
    from PIL import Image

    grey = np.nan_to_num(np.asarray(image, np.float64), nan=1.0)
    buf = io.BytesIO()
    Image.fromarray(np.round(np.clip(grey, 0, 1) * 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return go.Image(source="data:image/png;base64," + base64.b64encode(buf.getvalue()).decode(), hoverinfo="skip")


def picture_pixels(trace) -> np.ndarray:
    """The grey levels in [0, 1] of a picture() trace (or its JSON dict), as 8 bits hold them."""
    from PIL import Image

    source = trace["source"] if isinstance(trace, dict) else trace.source
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))), np.float64) / 255


def manifold(images, u1, u2, axis_titles=("z₁", "z₂"), height: int = 640) -> go.Figure:
    """Decoded images on a grid of codes as one picture. images (n2, n1, H, W): row i decodes u2[i]
    (u2 ascending, drawn bottom to top like a z₂ axis), column j decodes u1[j]."""
    images = np.asarray(images, np.float64)[::-1]  # top row = largest u2
    n2, n1, h, w = images.shape
    fig = go.Figure(picture(mosaic(images)))
    fig.update_xaxes(tickvals=[(j + 0.5) * w - 0.5 for j in range(n1)], ticktext=[f"{v:.2f}" for v in u1],
                     title_text=axis_titles[0], constrain="domain", showgrid=False)
    fig.update_yaxes(tickvals=[(i + 0.5) * h - 0.5 for i in range(n2)], ticktext=[f"{v:.2f}" for v in u2[::-1]],
                     title_text=axis_titles[1], autorange="reversed", scaleanchor="x", constrain="domain",
                     showgrid=False)
    fig.update_layout(height=height, margin=dict(l=10, r=10, t=10, b=10), plot_bgcolor="white")
    return fig

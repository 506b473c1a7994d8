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
    """Images in [0, 1] as a grid (0 black, 1 white, in 8-bit grey levels as a screen shows them), with a title
    over each: one picture on one pair of axes, not a heatmap on its own axes per image, which the browser
    laid out and painted one by one on every visit of an image page. layout.meta["cells"] holds each image's
    place in the picture (grid_images reads the images back).

    images: (N, H, W), or (N, H·W) with image_shape; a NaN pixel is white (an empty cell)."""
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
    rows, (h, w) = math.ceil(n / ncols), images.shape[1:]
    titles = [str(t) for t in titles] if titles is not None else []
    title_px = (15 * title_lines + 8) if titles else 6
    px = cell / max(h, w)  # screen pixels per image pixel at the figure's height
    gap_x, gap_y = max(1, round(4 / px)), max(1, round(title_px / px))  # the gap above a row holds its titles
    canvas = np.full((rows * (h + gap_y), ncols * (w + gap_x) - gap_x), np.nan)
    cells, annotations = [], []
    for i, image in enumerate(images):
        r, c = divmod(i, ncols)
        y0, x0 = r * (h + gap_y) + gap_y, c * (w + gap_x)
        canvas[y0:y0 + h, x0:x0 + w] = image
        cells.append([y0, x0, h, w])
        if i < len(titles) and titles[i]:
            annotations.append(dict(text=titles[i], x=x0 + (w - 1) / 2, y=y0 - 0.5, xref="x", yref="y",
                                    xanchor="center", yanchor="bottom", showarrow=False,
                                    font=dict(size=12, color="#222")))
    fig = go.Figure(picture(canvas))
    fig.update_xaxes(visible=False, range=[-0.5, canvas.shape[1] - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[canvas.shape[0] - 0.5, -0.5], scaleanchor="x", constrain="domain")
    fig.update_layout(annotations=annotations, height=rows * (cell + title_px) + 8, meta=dict(cells=cells),
                      margin=dict(l=4, r=4, t=4, b=4), plot_bgcolor="white")
    return fig


def grid_images(fig) -> np.ndarray:
    """The images of an image_grid figure (a go.Figure or its JSON dict), (N, H, W) in [0, 1], as 8 bits hold
    them (a NaN pixel reads as 1, white)."""
    data, layout = (fig["data"], fig["layout"]) if isinstance(fig, dict) else (fig.data, fig.layout)
    pixels = picture_pixels(data[0])
    return np.stack([pixels[y0:y0 + h, x0:x0 + w] for y0, x0, h, w in layout["meta"]["cells"]])


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
    the browser paints each cell; a PNG is a small fraction of those bytes and one image to draw. NaN is white.
    zlib's fastest level: the encoding is on the page's script run, and the stronger levels save few bytes."""
    from PIL import Image

    grey = np.nan_to_num(np.asarray(image, np.float64), nan=1.0)
    buf = io.BytesIO()
    levels = np.round(np.clip(grey, 0, 1) * 255).astype(np.uint8)
    Image.fromarray(levels, mode="L").save(buf, format="PNG", compress_level=1)
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

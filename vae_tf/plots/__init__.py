"""Plotly figures for the app: plain functions from arrays to a go.Figure (no Streamlit here).

Every chart of the app is built here so it can be tested without a browser, and so the pages stay
thin. One module per subject; every figure function and constant is importable from here:

    style       colours, font, the base layout
    images      image grids, reconstructions, the decoded manifold
    curves      training curves, one run or several
    latent      latent means by class, paths and their lengths
    bounds      log p(x) against the ELBO and the IWAE bounds, runs compared, the prior as a proposal
    posterior   the true posterior of a 2-D latent, with q over it
    ladder      how tight is the bound: the ladder of estimates, the gap's two parts, AIS and q* over p(z|x)
    diagnostics KL per latent dimension, I(x; z), traversals, the PPCA spectrum, β-sweep curves
"""
from .bounds import (bound_comparison, compare_finals, elbo_vs_logpx, gap_histogram, iwae_curve, log10_of_exp,
                     proposal_comparison)
from .diagnostics import (beta_sweep_curves, information_split, kl_per_dim_bars, ppca_spectrum,
                          traversal_mosaic)
from .curves import PANEL_TITLES, TEST_KEYS, compare_curves, curve_panels, smooth, training_curves
from .images import grid_images, image_grid, manifold, mosaic, picture, picture_pixels, reconstruction_grid
from .ladder import ais_on_posterior, gap_bars, ladder_chart, rung_color
from .latent import latent_axis_1d, latent_map, latent_points, path_norms
from .posterior import LOG_FLOOR, ellipse, posterior_map
from .style import (CLASS_COLORS, CLICK_COLOR, ELBO_COLOR, EXACT_COLOR, FONT, GRID_COLOR, LOGPX_COLOR, MARK_COLOR,
                    PATH_COLORS, PRIOR_COLOR, PROPOSAL_COLORS, PROPOSAL_NAMES, Q_COLOR, RUN_COLORS, base_layout,
                    class_color)

__all__ = [
    "bound_comparison", "compare_finals", "elbo_vs_logpx", "gap_histogram", "iwae_curve", "log10_of_exp",
    "proposal_comparison",
    "beta_sweep_curves", "information_split", "kl_per_dim_bars", "ppca_spectrum", "traversal_mosaic",
    "PANEL_TITLES", "TEST_KEYS", "compare_curves", "curve_panels", "smooth", "training_curves",
    "grid_images", "image_grid", "manifold", "mosaic", "picture", "picture_pixels", "reconstruction_grid",
    "ais_on_posterior", "gap_bars", "ladder_chart", "rung_color",
    "latent_axis_1d", "latent_map", "latent_points", "path_norms",
    "LOG_FLOOR", "ellipse", "posterior_map",
    "CLASS_COLORS", "CLICK_COLOR", "ELBO_COLOR", "EXACT_COLOR", "FONT", "GRID_COLOR", "LOGPX_COLOR", "MARK_COLOR",
    "PATH_COLORS", "PRIOR_COLOR", "PROPOSAL_COLORS", "PROPOSAL_NAMES", "Q_COLOR", "RUN_COLORS", "base_layout",
    "class_color",
]

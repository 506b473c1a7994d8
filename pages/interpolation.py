"""Interpolation: decode the codes on a straight and on a spherical path between two test images."""
import numpy as np
import streamlit as st

from ui import active, cache, links, widgets
from vae_tf import data, latent, plots

P = "page.interp."
MAP_IMAGES = 3000  # test images on the latent map
PATHS = ("**Linear**: z(t) = (1 − t)·z_A + t·z_B.  \n**Spherical**: the direction of z turns along the great circle "
         "from z_A to z_B while its length ‖z‖ moves linearly, so the path does not cut through the low-norm middle "
         "of the space where the prior N(0, I) has little mass.")
STRIPS = ("Each image is E[x|z(t)], the decoder's mean at a point of the path (t = 0 is z_A, t = 1 is z_B). A smooth "
          "strip means nearby codes decode to similar images, which the KL term encourages.")
NORMS = ("The length of the code along each path. In d dimensions the prior's mass sits near ‖z‖ ≈ √d; the linear "
         "path's middle is shorter than its ends whenever z_A and z_B point apart.")


def choose_ends(run) -> tuple[int, int]:
    classes = run.classes()
    how = st.radio("Choose A and B", ["at random from two classes", "by index"] if classes else ["by index"],
                   key=P + "how", bind="query-params", persist_state="session")
    if how == "by index":
        last = len(run.x) - 1
        ia = st.number_input("Index of A", 0, last, 0, key=P + "ia", bind="query-params", persist_state="session")
        ib = st.number_input("Index of B", 0, last, min(1, last), key=P + "ib", bind="query-params",
                             persist_state="session")
        return ia, ib
    ca = st.selectbox("Class of A", classes, index=0, format_func=run.dataset.label_name,
                      key=P + "ca", bind="query-params", persist_state="session")
    cb = st.selectbox("Class of B", classes, index=min(7, len(classes) - 1), format_func=run.dataset.label_name,
                      key=P + "cb", bind="query-params", persist_state="session")
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key=P + "seed", bind="query-params", persist_state="session",
                           help="Which image of each class is drawn.")
    return data.pick_one(run.y, ca, seed), data.pick_one(run.y, cb, seed + 1)


def latent_view(run, paths, za, zb):
    d = run.run.config.latent_dim
    if d == 1:
        z = cache.latent_means(run.key, MAP_IMAGES, run.model, run.x)
        y = run.y[:len(z)] if run.y is not None else None
        st.info("The latent map needs at least 2 latent dimensions; this run's latent has 1. "
                "Below, the paths run along its one axis, under each class's codes.")
        widgets.chart(plots.latent_axis_1d(z[:, 0], y, run.class_names, {k: p[:, 0] for k, p in paths.items()}),
                      f"Posterior means μ(x) of {len(z):,} test images along the single latent axis, one row per "
                      "class; the paths from A to B below. In one dimension both paths are the same straight line.")
        return
    proj, points = cache.latent_map(run.key, MAP_IMAGES, run.model, run.x)
    y = run.y[:len(points)] if run.y is not None else None
    fig = plots.latent_map(points, y, run.class_names, {k: proj(p) for k, p in paths.items()},
                           endpoints=proj(np.stack([za, zb])), axis_titles=proj.axis_titles)
    what = ("the latent itself (2-D)" if proj.method == "identity" else
            f"its projection on the two principal axes of the {d}-D means "
            f"({100 * proj.explained.sum():.0f}% of their variance)")
    widgets.chart(fig, f"Posterior means μ(x) of {len(points):,} test images coloured by class, in {what}, with the "
                       "two paths from A to B." + ("" if proj.method == "identity" else
                       " A projection flattens: paths that differ in the other dimensions may overlap here."))


def interpolation_page():
    st.title("Interpolation")
    run = active.active_run()
    d = run.run.config.latent_dim
    st.markdown(f"Run **{run.name}** ({d}-D latent): two test images A and B are encoded to their posterior means "
                "z_A and z_B; the decoder's mean image along a path from z_A to z_B shows what lies between them.")
    c1, c2, c3 = st.columns([2, 2, 3], gap="medium")
    with c1:
        ia, ib = choose_ends(run)
    with c2:
        steps = st.slider("Steps on each path", 3, 16, 10, key=P + "steps", bind="query-params",
                          persist_state="session")
        st.markdown(PATHS)
    with c3:
        ends = run.x[[ia, ib]]
        widgets.chart(plots.image_grid(run.images(ends), [f"A: #{ia} {run.label(ia)}", f"B: #{ib} {run.label(ib)}"],
                                       ncols=2, cell=120), toolbar=False)
    za, zb, paths, decoded = cache.interpolation(run.key, int(ia), int(ib), int(steps), run.model, run.x)
    t = latent.path_times(steps)
    for kind in paths:
        st.subheader(f"{kind.capitalize()} path")
        widgets.chart(plots.image_grid(run.images(decoded[kind]), [f"t = {ti:.2f}" for ti in t],
                                       ncols=steps, cell=100), key=f"strip.{kind}", toolbar=False)
    st.caption(STRIPS)
    left, right = st.columns([3, 2], gap="large")
    with right:
        widgets.chart(plots.path_norms(t, {k: np.linalg.norm(p, axis=1) for k, p in paths.items()},
                                       reference=np.sqrt(d)), NORMS)
    with left:
        latent_view(run, paths, za, zb)


links.run_page(interpolation_page)

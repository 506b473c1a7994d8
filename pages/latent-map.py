"""Latent map: where the encoder puts the test images, what they are, and what the decoder makes of the space."""
import numpy as np
import streamlit as st

from ui import active, cache, links, server, widgets
from vae_tf import latent, plots

P = "page.latent."
HOW_TO = ("Hover a point for its index and class; click it, or drag a lasso or box around several (the toolbar "
          "switches between them), to see their images on the right. Double-click clears.")
MANIFOLD_2D = ("The decoder's mean image E[x|z] on a grid of codes z = (z₁, z₂) at the 5%, …, 95% quantiles of the "
               "prior N(0, 1) on each axis: the whole 2-D latent as the decoder sees it. Compare with the map above: "
               "each class's region decodes to that class, and the borders blend.")


def typical(pts, y, n: int) -> list[int]:
    """One typical image per class: the one whose code lies nearest its class's mean code."""
    shown = []
    labels = y if y is not None else np.zeros(n, int)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        centre = pts[members].mean(0)
        shown.append(int(members[np.argmin(np.linalg.norm(pts[members] - centre, axis=1))]))
    return shown


def map_and_images(run, pts, y, proj, n: int):
    selection = widgets.selected_indices(st.session_state.get(P + "map"))
    shown = selection[:24] if selection else typical(pts, y, n)
    left, right = st.columns([3, 2], gap="large")
    with left:
        fig = plots.latent_points(pts, y, run.class_names, selected=shown, axis_titles=proj.axis_titles)
        st.plotly_chart(fig, width="stretch", key=P + "map", on_select="rerun",
                        selection_mode=("points", "box", "lasso"), config={"displaylogo": False})
        st.caption(HOW_TO)
    with right:
        if selection:
            st.markdown(f"**{len(selection)} selected**" + (", the first 24 shown" if len(selection) > 24 else "")
                        + ":")
        else:
            st.markdown("**Nothing selected yet.** Ringed on the map and shown here: for each class, the test image "
                        "whose code lies nearest the class's mean code.")
        titles = [f"#{i} {run.label(i)}" for i in shown]
        # the grey-level test images as stored (a Bernoulli model sees binarized ones, which hide the detail)
        widgets.chart(plots.image_grid(run.dataset.x_test[shown] / 255.0, titles, ncols=4, cell=90), toolbar=False,
                      key="latent.shown")


def manifold(run, pts, proj, side: int):
    st.subheader("The decoded manifold")
    u, center, axes = latent.manifold_codes(proj, pts, side)
    if proj.method == "identity":
        titles, caption = ("z₁", "z₂"), MANIFOLD_2D
    else:
        sd = pts.std(0)
        titles = (f"PC1 (× its sd, {sd[0]:.2f})", f"PC2 (× its sd, {sd[1]:.2f})")
        caption = (f"The decoder's mean image at codes mean + a·sd₁·PC1 + b·sd₂·PC2, with a and b at the 5%, …, 95% "
                   f"quantiles of N(0, 1): a slice through the {run.run.config.latent_dim}-D latent along the two "
                   "principal axes of the test codes, every other coordinate held at the codes' mean.")
    images = cache.decoded_grid(run.key, u, u, center, axes, run.model)
    h, w = run.image_shape
    widgets.chart(plots.manifold(images.reshape(len(u), len(u), h, w), u, u, titles, height=560), caption,
                  key="latent.manifold", toolbar=False)


def latent_map_page():
    st.title("Latent map")
    run = active.active_run()
    d = run.run.config.latent_dim
    if d < 2:
        st.info(f"Run **{run.name}** has a 1-D latent: the Interpolation page draws it along its one axis. "
                "A map needs two dimensions.")
        widgets.offer_run(server.TWO_D_RUN, "Make the 2-D run the active run.", "latent.use2d")
        st.stop()
    c1, c2 = st.columns(2, gap="large")
    n = c1.select_slider("Test images on the map", [500, 1000, 2000, 3000, 5000, 10000], value=3000, key=P + "n",
                         bind="query-params", persist_state="session")
    side = c2.slider("Manifold grid (codes per side)", 5, 20, 15, key=P + "side", bind="query-params",
                     persist_state="session")
    n = min(n, len(run.x))
    proj, pts = cache.latent_map(run.key, n, run.model, run.x)
    y = run.y[:n] if run.y is not None else None
    if proj.method == "identity":
        st.markdown(f"Run **{run.name}**: the posterior means μ(x) of {n:,} test images in its 2-D latent, "
                    "coloured by class. Nothing is projected: this is the space the decoder reads.")
    else:
        st.markdown(f"Run **{run.name}**: the posterior means μ(x) of {n:,} test images, projected from {d}-D onto "
                    f"their two principal axes ({100 * proj.explained.sum():.0f}% of their variance). Points close "
                    "here may still lie far apart in the other dimensions.")
    map_and_images(run, pts, y, proj, n)
    manifold(run, pts, proj, side)


links.run_page(latent_map_page)

"""The true posterior: p(z|x) on a grid over a 2-D latent, with the encoder's q(z|x) drawn over it."""
import numpy as np
import streamlit as st

from ui import active, cache, links, server, widgets
from vae_tf import plots

P = "page.posterior."
PRESETS = {0: "q fits", 5: "q misses"}
PRESET_HELP = {0: "q(z|x) covers the posterior", 5: "q sits on a weak mode, away from most of the posterior's mass"}
INTRO = ("Bayes' rule gives the posterior the encoder approximates: p(z|x) = p(x|z) p(z) / p(x), with "
         "p(x) = ∬ p(x|z) p(z) dz. In two dimensions that integral is a sum over a fine grid, so the exact posterior "
         "can be drawn beside q(z|x) = N(μ(x), diag s(x)²). Their distance KL(q(z|x) ‖ p(z|x)) is exactly the ELBO's "
         "gap, log p(x) − ELBO.")
MAP = ("Blue: the true posterior p(z|x) of this image, from p(x|z)·p(z) on the grid divided by the grid's p(x). "
       "Orange: the encoder's q(z|x), its 1σ and 2σ ellipses, its mean (×) and samples. Grey dotted: the prior "
       "N(0, I) at radius 1, 2, 3. Click anywhere (shift-click for more points) to decode that z.")
MISS = ("Importance sampling with q as the proposal then almost never draws from that region, and its log p̂(x) (ESS "
        "{ess:.0f} of {k}) falls short of the grid's by {short:.1f} nats: it reports the gap to the part of the "
        "posterior q covers. KL(q ‖ p) is 'mode-seeking': it charges q for mass where p has none, not for p's mass "
        "that q ignores, so a q locked on one mode is what ELBO training can settle on.")


def pick(i: int):
    st.session_state[P + "image"] = i


def controls(n_images: int):
    c1, c2, c3 = st.columns([2, 3, 2], gap="medium")
    with c1:
        index = st.number_input("Test image", 0, n_images - 1, 0, key=P + "image", bind="query-params",
                                persist_state="session", help="Index of the test image whose posterior is drawn.")
        b1, b2 = st.columns(2)
        for col, (i, what) in zip((b1, b2), PRESETS.items()):
            col.button(f"#{i}: {what}", key=f"posterior.preset{i}", on_click=pick, args=(i,), width="stretch",
                       help=f"On the shipped {server.TWO_D_RUN} run, image #{i}: {PRESET_HELP[i]}.")
    with c2:
        view = st.segmented_control("Colour by", ["density", "log density"], default="density", key=P + "view",
                                    bind="query-params", persist_state="session", required=True,
                                    help="The density shows where the mass is; its log shows weaker modes too "
                                         f"(the top {plots.LOG_FLOOR:.0f} nats).")
        zoom = st.segmented_control("Extent", ["the posterior", "the prior (±4)"], default="the posterior",
                                    key=P + "zoom", bind="query-params", persist_state="session", required=True,
                                    help="Zoom on the posterior's mass, or see where it sits inside the prior N(0, I).")
    with c3:
        n_samples = st.slider("Samples from q", 0, 100, 20, key=P + "samples", bind="query-params",
                              persist_state="session")
    return index, view, zoom, n_samples


def posterior_map(run, g, index, view, zoom, n_samples, marks):
    """The map, with the previous click's selection (kept in session state under the chart's key)."""
    if zoom == "the posterior":
        z1, z2, log_post = g.z1, g.z2, g.log_posterior
    else:
        z1, z2, lj = cache.prior_scale_grid(run.key, index, 4.0, 161, run.model, run.x)
        log_post = lj - g.log_px  # normalised by the fine grid's log p(x)
    samples = cache.posterior_samples(run.key, index, n_samples, index, run.model, run.x) if n_samples else None
    clicked = widgets.selected_latents(st.session_state.get(P + "map"))[:8]
    fig = plots.posterior_map(z1, z2, log_post, g.q_loc, g.q_scale, samples, marks=marks,
                              clicked=[(f"C{j + 1}", z) for j, z in enumerate(clicked)],
                              view="log" if view == "log density" else "density")
    st.plotly_chart(fig, width="stretch", key=P + "map", on_select="rerun", selection_mode="points",
                    config={"displaylogo": False})
    st.caption(MAP)
    return clicked


def numbers(run, g, imp, index: int):
    from vae_tf.exact import mass_within

    kl_grid, gap_is = g.kl_q_posterior, imp["log_px"] - imp["elbo"]
    st.subheader(f"Image #{index}" + (f" ({run.label(index)})" if run.y is not None else ""))
    m1, m2 = st.columns(2)
    m1.metric("grid KL(q ‖ p(z|x))", f"{kl_grid:.3f}",
              help="Nats. log p(x) − ELBO with both integrals on grids: exact up to the grid's resolution.")
    m2.metric("estimated gap", f"{gap_is:.3f}",
              help=f"Nats. log p̂(x) by importance sampling with q as the proposal (K = {imp['k']}) minus the "
                   "Monte-Carlo ELBO from the same draws.")
    rows = [("log p(x)", g.log_px, imp["log_px"]), ("ELBO", g.elbo, imp["elbo"]),
            ("gap = KL(q ‖ p(z|x))", kl_grid, gap_is)]
    is_col = f"IS, K = {imp['k']}"
    st.dataframe({"nats": [r[0] for r in rows], "grid": [r[1] for r in rows], is_col: [r[2] for r in rows]},
                 hide_index=True, column_config={"grid": st.column_config.NumberColumn(format="%.3f"),
                                                 is_col: st.column_config.NumberColumn(format="%.3f")})
    share = mass_within(g.z1, g.z2, g.log_posterior, g.q_loc, g.q_scale, 2.0)
    diff = abs(kl_grid - gap_is)
    if diff < 0.5:
        st.success(f"The two agree within {diff:.3f} nats: q covers the posterior, so sampling from q finds "
                   f"all of p(x). p(z|x) keeps {100 * share:.1f}% of its mass inside q's 2σ ellipse "
                   "(q itself keeps 86.5% there).")
    else:
        st.warning(f"They disagree by {diff:.1f} nats. p(z|x) keeps only {100 * share:.2g}% of its mass inside "
                   "q's 2σ ellipse (q itself keeps 86.5%): q sits away from where the posterior's mass is. "
                   + MISS.format(ess=imp["ess"], k=imp["k"], short=g.log_px - imp["log_px"]))


def decoded(run, index, modes, points):
    if len(modes) > 1:
        st.caption("Modes of p(z|x): " + "; ".join(f"M{j + 1} at ({z[0]:.2f}, {z[1]:.2f}), log p(z|x) = {v:.1f}"
                                                   for j, (z, v) in enumerate(modes)) + ".")
    images = np.concatenate([run.x[index][None],
                             cache.decode(run.key, tuple(tuple(float(v) for v in z) for _, z in points), run.model)])
    titles = ["the image x"] + [f"{lab} ({z[0]:.2f}, {z[1]:.2f})" for lab, z in points]
    st.markdown("**Decoded at the marked points**: q = the mean of q(z|x), M = modes of p(z|x), "
                "C = clicked points.")
    widgets.chart(plots.image_grid(run.images(images), titles, ncols=3, cell=110), toolbar=False,
                  key="posterior.decoded")


def posterior_page():
    st.title("The true posterior p(z|x)")
    run = active.active_run()
    if run.run.config.latent_dim != 2:
        shipped = active.load(server.TWO_D_RUN)
        st.info(f"The active run **{run.name}** has a {run.run.config.latent_dim}-D latent. The true posterior "
                "p(z|x) = p(x|z)·p(z)/p(x) can be computed on a grid, and drawn, only when z has two dimensions: "
                "a grid of 201 points per axis is 40,401 decoder calls in 2-D, and 201²⁰ in 20-D. "
                + (f"Below: the shipped 2-D run **{server.TWO_D_RUN}**; the other pages keep showing "
                   f"{run.name}." if shipped else ""))
        widgets.offer_run(server.TWO_D_RUN, "Make the 2-D run the active run of every page.", "posterior.use2d")
        if shipped is None:
            st.stop()
        run = shipped
    st.markdown(f"Run **{run.name}**. " + INTRO)
    index, view, zoom, n_samples = controls(len(run.x))
    g = cache.grid_posterior(run.key, index, run.model, run.x)
    imp = cache.importance(run.key, index, cache.IS_K, 0, run.model, run.x)
    modes = cache.posterior_modes(run.key, index, run.model, run.x)
    marks = [("q", g.q_loc)] + [(f"M{j + 1}", z) for j, (z, _) in enumerate(modes)]
    left, right = st.columns([3, 2], gap="large")
    with left:
        clicked = posterior_map(run, g, index, view, zoom, n_samples, marks)
    with right:
        numbers(run, g, imp, index)
        decoded(run, index, modes, marks + [(f"C{j + 1}", z) for j, z in enumerate(clicked)])


links.run_page(posterior_page)

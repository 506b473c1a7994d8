"""log p(x) vs ELBO: how loose is the bound, image by image, and how the IWAE bound closes the gap."""
import numpy as np
import streamlit as st

from ui import active, estimates, links, run_pair, widgets
from vae_tf import plots

P = "page.logpx."
INTRO = ("For every image, log p(x) = ELBO(x) + KL(q(z|x) ‖ p(z|x)): the ELBO falls short of the log-likelihood by "
         "how far the encoder's q(z|x) is from the true posterior p(z|x). log p(x) is estimated by importance "
         "sampling with q as the proposal, log p̂(x) = log (1/K) Σₖ p(x, zₖ)/q(zₖ|x), zₖ ~ q(z|x), whose expectation "
         "is the IWAE bound L_K: ELBO = L₁ ≤ L₂ ≤ … ≤ log p(x).")
SCATTER = ("Each dot is one test image. No dot can lie above the dashed line y = x, since ELBO ≤ log p(x); its "
           "vertical distance below the line is that image's gap KL(q(z|x) ‖ p(z|x)). The gaps (a few nats) are small "
           "next to how much log p(x) differs between images, so the dots hug the line; (b) shows the gaps.")
FLAGS = (" Crosses: images whose K weights have a Pareto k̂ above 0.7 (Vehtari et al., 2024): their variance is in "
         "effect infinite, so the estimate is likely too low and its error bar means nothing (hover for each image's "
         "k̂).")
GAPS = ("How many nats the ELBO loses on each image: the KL divergence from q(z|x) to the true posterior. It is never "
        "negative; a wide spread means the encoder fits some images' posteriors much worse than others.")
CURVE = ("L_k, the mean over images of log (1/k) Σ p(x, zᵢ)/q(zᵢ|x) with k samples, from ⌊K/k⌋ disjoint groups of "
         "the same draws (so the points share their draws). Bars: ±1 Monte-Carlo standard error with the images held "
         "fixed, the same estimator at every k: the spread of one k-draw estimate, measured from the groups and fitted "
         "as a power law in k, extended to the points with fewer than 4 groups (at k = K: one). L₁ is the ELBO; the "
         "bound rises with k toward log p(x), because averaging more importance weights makes q's mismatch with "
         "p(z|x) matter less.")
PAIR = ("The IWAE objective trains on L_k instead of the ELBO. Below, two runs on the same test images (by default the "
        "shipped pair trained alike with k = 5 samples per image, one on each objective), with the same estimator "
        f"(first {run_pair.N_IMAGES} test images, K = {run_pair.K}). An estimate computed here is reused on the "
        "Compare runs page, and the other way round.")


def question(two_d: bool) -> tuple[int, int, int, int, bool]:
    with st.form("logpx.form", border=True):
        c1, c2, c3, c4 = st.columns(4)
        n = c1.number_input("Test images", 10, estimates.MAX_IMAGES, estimates.DEFAULT_IMAGES, step=50, key=P + "n",
                            bind="query-params", persist_state="session", help="The first n test images.")
        k = c2.select_slider("K, samples per image", estimates.K_CHOICES, value=estimates.DEFAULT_K, key=P + "k",
                             bind="query-params", persist_state="session",
                             help="More samples: a tighter estimate, and a longer wait.")
        seed = c3.number_input("Seed", 0, 2**31 - 1, estimates.DEFAULT_SEED, key=P + "seed",
                               bind="query-params", persist_state="session")
        grid_images = estimates.DEFAULT_GRID_IMAGES
        if two_d:
            grid_images = c4.number_input(
                "Grid images", 0, 100, estimates.DEFAULT_GRID_IMAGES, key=P + "grid", bind="query-params",
                persist_state="session",
                help="A 2-D latent lets log p(x) be integrated on a grid, exactly up to the grid's resolution: for "
                     "the first images (≈1–3 s each, in the background).")
        submitted = st.form_submit_button("Estimate", type="primary", icon=":material/calculate:")
    return n, k, seed, grid_images, submitted


def grid_answer(run, m: int):
    """The grid integral of the first m images, started in the background; None until it is done."""
    gjob = estimates.start_grid(run.model, run.x, run.key, m)
    if gjob.running:
        widgets.poll_jobs({"Integrating log p(x) on a grid over the 2-D latent": gjob},
                          note="; the charts gain the grid answer when it is done.")
    elif gjob.error is not None:
        st.error(f"The grid integral failed: {gjob.error_text}")
    else:
        return gjob.result
    return None


def charts_ab(est, result, grid):
    grid_pair = (np.arange(len(grid)), grid) if grid is not None and len(grid) else None
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("(a) ELBO vs log p(x), per image")
        widgets.chart(plots.elbo_vs_logpx(est.log_px, est.elbo, exact=result.exact, grid=grid_pair,
                                          pareto_k=est.pareto_k, k=est.k, stderr=est.log_px_mc_stderr),
                      SCATTER + FLAGS
                      + (" Rings: the exact log p(x) of the linear-Gaussian model, which the estimates should sit on."
                         if result.exact is not None else "")
                      + (" Diamonds: log p(x) integrated on a grid over the 2-D latent." if grid_pair else ""))
    with right:
        st.subheader("(b) The gap, log p(x) − ELBO")
        widgets.chart(plots.gap_histogram(est.gap, exact_gap=None if result.exact is None else result.exact - est.elbo,
                                          grid_gap=None if grid_pair is None else grid - est.elbo[:len(grid)]), GAPS)


def charts_cd(run, est, result, grid, k: int, seed: int):
    s = est.summary()
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("(c) The IWAE bound against K")
        curve = est.iwae_curve()
        subset = None
        if grid is not None and len(grid):
            mm = len(grid)
            subset = {"ks": curve["k"], "mean": est.iwae[:mm].mean(0), "n": mm, "grid_mean": float(grid.mean()),
                      "mc_stderr": np.sqrt(est.iwae_mc_var[:mm].sum(0)) / mm}
        widgets.chart(plots.iwae_curve(curve["k"], curve["mean"], curve["mc_stderr"], s["elbo"], s["log_px"],
                                       exact_mean=None if result.exact is None else float(result.exact.mean()),
                                       subset=subset), CURVE)
    with right:
        st.subheader("(d) Summary")
        summary = estimates.summary_table(result, grid)
        st.table(summary.style.format({"mean (nats/image)": "{:.3f}", "standard error": "{:.3f}"}).hide(axis="index"))
        st.caption("Means over the test images, with standard errors over images (they cover the choice of images "
                   "as well as the sampling). Each image's own log p̂(x) has a Monte-Carlo standard error (per-image "
                   "CSV, hover in (a)): its standard deviation over repeats with other seeds, from the spread of "
                   "disjoint groups of its draws; it leaves out the estimate's downward bias, which k̂ flags.")
        d1, d2 = st.columns(2)
        stem = f"{run.name}-n{est.num_images}-K{k}-seed{seed}"
        d1.download_button("Summary (CSV)", summary.to_csv(index=False), f"{stem}-summary.csv", "text/csv",
                           icon=":material/download:", width="stretch")
        per_image = estimates.per_image_table(result, run.y, run.dataset.label_name, grid)
        d2.download_button("Per image (CSV)", per_image.to_csv(index=False), f"{stem}-per-image.csv", "text/csv",
                           icon=":material/download:", width="stretch")


def metrics(est, k: int):
    s = est.summary()
    m1, m2, m3, m4, m5 = st.columns(5)
    m1.metric("mean ELBO", f"{s['elbo']:.2f}", help="nats/image")
    m2.metric("mean log p(x)", f"{s['log_px']:.2f}", help=f"importance sampling, K = {k}; nats/image")
    m3.metric("mean gap", f"{s['gap']:.2f} nats", help="KL(q(z|x) ‖ p(z|x)), averaged over images")
    m4.metric("time", f"{est.seconds:.1f} s", help="to compute this estimate (kept for later visits)")
    m5.metric("unreliable images", f"{s['unreliable_images']} of {s['num_images']}",
              help="Images whose K importance weights have a Pareto k̂ above 0.7 (Vehtari et al., 2024): their "
                   "estimate is likely too low and its error bar means nothing. They are crosses in (a).")


def log_px_page():
    st.title("log p(x) against the ELBO")
    run = active.active_run()
    st.markdown(f"Run **{run.name}**. " + INTRO)
    two_d = run.run.config.latent_dim == 2
    n, k, seed, grid_images, submitted = question(two_d)
    if submitted:
        estimates.restart_if_failed(run.key, n, k, seed)
    job = estimates.start_estimate(run.model, run.x, run.key, n, k, seed)
    if job.running:
        widgets.wait_for(job, f"Estimating log p(x) of {n} test images with K = {k} samples each…", "logpx.stop",
                         "Stop after the current batch of images and show those.")
    if job.error is not None:
        st.error(f"The estimate failed: {job.error_text}. Press Estimate to try again.")
        st.stop()
    result = job.result
    est = result.estimate
    if est.cancelled:
        st.warning(f"Stopped after {est.num_images} of {n} images; the charts show those. Press Estimate to compute "
                   "all.")
    grid = grid_answer(run, min(grid_images, est.num_images)) if two_d and grid_images > 0 else None
    metrics(est, k)
    charts_ab(est, result, grid)
    charts_cd(run, est, result, grid, k, seed)
    st.subheader("(e) A VAE beside an IWAE")
    st.markdown(PAIR)
    run_pair.section("page.logpx.pair.")


links.run_page(log_px_page)

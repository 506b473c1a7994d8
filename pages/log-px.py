"""log p(x) vs ELBO: how loose is the bound, image by image, and how the IWAE bound closes the gap."""
import numpy as np
import streamlit as st

from ui import active, cache, estimates, links, run_pair, widgets
from ui.escape import md
from vae_tf import plots

P = "page.logpx."
INTRO = ("For every image, log p(x) = ELBO(x) + KL(q(z|x) ‖ p(z|x)): the ELBO falls short of the log-likelihood by "
         "how far the encoder's q(z|x) is from the true posterior p(z|x). log p(x) is estimated by importance "
         "sampling with q as the proposal, log p̂(x) = log (1/K) Σₖ p(x, zₖ)/q(zₖ|x), zₖ ~ q(z|x), whose expectation "
         "is the IWAE bound L_K: ELBO = L₁ ≤ L₂ ≤ … ≤ log p(x). So log p̂(x) − ELBO estimates L_K − ELBO, a lower "
         "estimate of the KL: the part of it that K draws recover.")
SCATTER = ("Each dot is one test image: x its log p̂(x) = log (1/K) Σ wₖ, y the ELBO estimated from the same K draws, "
           "(1/K) Σ log wₖ. A log of a mean is never below the mean of the logs, so no dot lies above the dashed line "
           "y = x; its vertical distance below it is that image's L_K − ELBO, a lower estimate of KL(q(z|x) ‖ p(z|x)). "
           "The gaps (a few nats) are small next to how much log p(x) differs between images, so the dots hug the "
           "line; (b) shows them. (The summary's ELBO uses the exact KL(q ‖ p(z)) instead, a less noisy number with "
           "the same expectation, which a single image's log p̂ can fall below.)")
FLAGS = (" Crosses: images whose K weights have a Pareto k̂ above 0.7 (Vehtari et al., 2024): their variance is in "
         "effect infinite, so the estimate is likely too low and its error bar means nothing (hover for each image's "
         "k̂).")
GAPS = ("log p̂(x) − ELBO per image, both from the same K draws: never negative, and in expectation L_K − ELBO, at "
        "most the KL divergence from q(z|x) to the true posterior (equal only as K → ∞). A wide spread means the "
        "encoder fits some images' posteriors much worse than others.")
EXACT_GAPS = " Green: the exact KL(q(z|x) ‖ p(z|x)) of the same images, closed form."
GRID_GAPS = " Ticks: the KL integrated {how} for the first images, exact up to its tolerance."
CURVE = ("L_k, the mean over images of log (1/k) Σ p(x, zᵢ)/q(zᵢ|x) with k samples, from ⌊K/k⌋ disjoint groups of "
         "the same draws (so the points share their draws). Bars: ±1 Monte-Carlo standard error with the images held "
         "fixed, the same estimator at every k: the spread of one k-draw estimate, measured from the groups and fitted "
         "as a power law in k, extended to the points with fewer than 4 groups (at k = K: one). L₁ is the ELBO; the "
         "bound rises with k toward log p(x), because averaging more importance weights makes q's mismatch with "
         "p(z|x) matter less.")
PPCA = (" Green dashes: probabilistic PCA's log p(x) of the same images ({ppca:.2f}), the maximum likelihood of a "
        "linear-Gaussian model, in closed form from the training images' covariance (Tipping & Bishop, 1999): the "
        "optimum a linear VAE's training should reach (Lucas et al., 2019). This run's exact log p(x) is {exact:.2f}.")
PAIR = ("The IWAE objective trains on L_k instead of the ELBO. Below, two runs on the same test images (by default the "
        "shipped pair trained alike with k = 5 samples per image, one on each objective), with the same estimator "
        f"(first {run_pair.N_IMAGES} test images, K = {run_pair.K}). An estimate computed here is reused on the "
        "Compare runs page, and the other way round.")


def question(integrable: bool) -> tuple[int, int, int, int, bool]:
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
        if integrable:
            grid_images = c4.number_input(
                "Grid images", 0, 100, estimates.DEFAULT_GRID_IMAGES, key=P + "grid", bind="query-params",
                persist_state="session",
                help="A 1-D or 2-D latent lets log p(x) be integrated numerically (a line or a grid of z), exactly up "
                     "to its tolerance: for the first images (≈1–3 s each on a grid, in the background).")
        submitted = st.form_submit_button("Estimate", type="primary", icon=":material/calculate:")
    return n, k, seed, grid_images, submitted


def grid_answer(run, m: int):
    """The grid integral (2-D) or quadrature (1-D) of the first m images, in the background; None until done."""
    gjob = estimates.start_grid(run.model, run.x, run.key, m)
    how = "on a grid over the 2-D latent" if run.run.config.latent_dim == 2 else "along the 1-D latent"
    if gjob.running:
        widgets.poll_jobs({f"Integrating log p(x) {how}": gjob}, note="; the charts gain the answer when it is done.")
    elif gjob.error is not None:
        st.error(f"The numerical integral failed: {md(gjob.error_text)}")
    else:
        grid = gjob.result
        if len(grid) and not grid.converged.all():
            st.warning(f"The integral {how} had not converged for {int((~grid.converged).sum())} of {len(grid)} images "
                       "(log p(x) still moved by more than its tolerance at the finest spacing): treat those as "
                       "approximate.")
        return grid
    return None


def charts_ab(est, result, grid):
    has_grid = grid is not None and len(grid) > 0
    name = "grid log p(x)" if has_grid and grid.method == "grid" else "quadrature log p(x)"
    how = "on a grid over the 2-D latent" if has_grid and grid.method == "grid" else "along the 1-D latent"
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("(a) ELBO vs log p(x), per image")
        widgets.chart(plots.elbo_vs_logpx(est.log_px, est.elbo_same_draws, exact=result.exact,
                                          grid=(np.arange(len(grid)), grid.log_px) if has_grid else None,
                                          pareto_k=est.pareto_k, k=est.k, stderr=est.log_px_mc_stderr,
                                          elbo_name="ELBO, same K draws", grid_name=name),
                      SCATTER + FLAGS
                      + (" Rings: the exact log p(x) of the linear-Gaussian model, which the estimates should sit on."
                         if result.exact is not None else "")
                      + (f" Diamonds: log p(x) integrated {how}." if has_grid else ""))
    with right:
        st.subheader("(b) The gap L_K − ELBO, per image")
        widgets.chart(plots.gap_histogram(est.gap_same_draws, exact_gap=result.exact_kl,
                                          grid_gap=grid.kl if has_grid else None,
                                          grid_name=name.replace("log p(x)", "KL(q ‖ p(z|x))")),
                      GAPS + (EXACT_GAPS if result.exact_kl is not None else "")
                      + (GRID_GAPS.format(how=how) if has_grid else ""))


def charts_cd(run, est, result, grid, k: int, seed: int, ppca=None):
    s = est.summary()
    left, right = st.columns(2, gap="large")
    with left:
        st.subheader("(c) The IWAE bound against K")
        curve = est.iwae_curve()
        subset = None
        if grid is not None and len(grid):
            mm = len(grid)
            subset = {"ks": curve["k"], "mean": est.iwae[:mm].mean(0), "n": mm, "grid_mean": float(grid.log_px.mean()),
                      "mc_stderr": np.sqrt(est.iwae_mc_var[:mm].sum(0)) / mm, "name": f"{grid.method} log p(x)"}
        widgets.chart(plots.iwae_curve(curve["k"], curve["mean"], curve["mc_stderr"], s["elbo"], s["log_px"],
                                       exact_mean=None if result.exact is None else float(result.exact.mean()),
                                       subset=subset, ppca_mean=None if ppca is None else float(ppca.mean())),
                      CURVE + (PPCA.format(exact=float(result.exact.mean()), ppca=float(ppca.mean()))
                               if ppca is not None else ""))
    with right:
        st.subheader("(d) Summary")
        summary = estimates.summary_table(result, grid, ppca)
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
    m3.metric("mean gap", f"{s['gap']:.2f} nats", help=f"log p̂(x) − ELBO: L_K − ELBO (K = {k}), a lower estimate of "
              "KL(q(z|x) ‖ p(z|x)), averaged over images (ELBO with the exact KL(q ‖ p(z)))")
    m4.metric("time", f"{est.seconds:.1f} s", help="to compute this estimate (kept for later visits)")
    m5.metric("unreliable images", f"{s['unreliable_images']} of {s['num_images']}",
              help="Images whose K importance weights have a Pareto k̂ above 0.7 (Vehtari et al., 2024): their "
                   "estimate is likely too low and its error bar means nothing. They are crosses in (a).")


def log_px_page():
    st.title("log p(x) against the ELBO")
    picked = active.picked()
    if picked is None:
        active.active_run()  # no run, or one that cannot be read: it says which and stops the page
        st.stop()
    ref, config = picked
    st.markdown(f"Run **{ref.name}**. " + INTRO)
    integrable = config["latent_dim"] in (1, 2)
    n, k, seed, grid_images, submitted = question(integrable)
    if submitted:
        estimates.restart_if_failed(ref, n, k, seed)
    elif estimates.find(ref, n, k, seed) is None and n * k > estimates.DEFAULT_IMAGES * estimates.DEFAULT_K:
        st.info(f"{n:,} images × K = {k:,} samples is more than the page computes on its own (a link never starts "
                "a large estimate): press **Estimate** to start it.")
        st.stop()  # before the run is loaded: such a link's first open on a fresh server imports no TensorFlow
    run = active.active_run()
    job = estimates.start_estimate(run.model, run.x, run.key, n, k, seed)
    if job.running:
        widgets.wait_for(job, f"Estimating log p(x) of {n} test images with K = {k} samples each…", "logpx.stop",
                         "Stop after the current batch of images and show those.")
    if job.error is not None:
        st.error(f"The estimate failed: {md(job.error_text)}. Press Estimate to try again.")
        st.stop()
    result = job.result
    est = result.estimate
    if est.cancelled:
        st.warning(f"Stopped after {est.num_images} of {n} images; the charts show those. Press Estimate to compute "
                   "all.")
    grid = grid_answer(run, min(grid_images, est.num_images)) if integrable and grid_images > 0 else None
    metrics(est, k)
    charts_ab(est, result, grid)
    ppca = None
    if result.exact is not None:  # the linear-Gaussian optimum for this data set and latent size
        cfg = run.run.config
        ppca = cache.ppca_test_log_px(cfg.dataset, cfg.latent_dim)[:est.num_images]
    charts_cd(run, est, result, grid, k, seed, ppca)
    st.subheader("(e) A VAE beside an IWAE")
    st.markdown(PAIR)
    run_pair.section("page.logpx.pair.")


links.run_page(log_px_page)

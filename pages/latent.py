"""Latent diagnostics: what each latent dimension carries, posterior collapse, and a β sweep that causes it."""
import numpy as np
import streamlit as st

from ui import active, beta_sweep, cache, catalog, links, server, session, sidebar, widgets
from vae_tf import plots
from vae_tf.data import DataError

P = "page.latent."  # this page's URL is /latent (the Latent map page's keys are page.latent.map, .n, .side)
IMAGE_COUNTS = (1000, 2000, 5000, 10000)
SHOWN_DIMS = 12  # traversal rows when the latent has more dimensions: the 8 largest KL and the 4 smallest


def choices(n_test: int):
    counts = [c for c in IMAGE_COUNTS if c < n_test] + [n_test]
    c1, c2 = st.columns(2)
    n = c1.select_slider("Test images", counts, value=counts[-1], key=P + "images", bind="query-params",
                         persist_state="session", help="The images every number on this page averages over. "
                         "I(x; z) over N images can never exceed log N.")
    seed = c2.number_input("Seed of the draws z ~ q(z|x)", 0, 2**31 - 1, 0, key=P + "seed", bind="query-params",
                           persist_state="session")
    return n, seed


def information(diag):
    d = len(diag.kl_per_dim)
    m = st.columns(4)
    m[0].metric("active units", f"{diag.active_units} of {d}", help=f"Burda et al. (2016): z_u is active when "
                f"A_u = Var_x E_q[z_u] > {diag.threshold:g}")
    m[1].metric("average KL(q(z|x) ‖ p(z))", f"{diag.kl:.2f} nats",
                help="Exact: Σ_j ½(μ_j² + s_j² − log s_j² − 1), averaged over the images.")
    m[2].metric("I(x; z), nats", f"{diag.mutual_information:.2f} ± {diag.mutual_information_stderr:.2f}",
                help="Mutual information between the image and its code under the aggregate posterior (chart below).")
    m[3].metric("KL(q(z) ‖ p(z)), nats", f"{diag.marginal_kl:.2f} ± {diag.marginal_kl_stderr:.2f}",
                help="How far the aggregate posterior q(z), the average of every image's q(z|x), is from p(z).")
    widgets.chart(
        plots.kl_per_dim_bars(diag.kl_per_dim, diag.kl_per_dim_stderr, diag.activity, diag.threshold),
        caption="The KL term of the ELBO splits exactly over dimensions: KL_j = ½(μ_j² + s_j² − log s_j² − 1) for "
                f"q(z_j|x) = N(μ_j, s_j²) against p(z_j) = N(0, 1), here averaged over {diag.num_images:,} test "
                "images (error bars: ±1 standard error over the images). Blue bars are active units, grey ones "
                f"have Var_x E_q[z_j] ≤ {diag.threshold:g}: the same code for every image.")
    widgets.chart(
        plots.information_split(diag.kl, diag.mutual_information, diag.mutual_information_stderr,
                                diag.marginal_kl, diag.marginal_kl_stderr, diag.log_n), toolbar=False,
        caption="ELBO surgery (Hoffman & Johnson 2016): average KL = I(x; z) + KL(q(z) ‖ p(z)), with q(z) the "
                f"average of the {diag.num_images:,} images' q(z|x). Estimated from {diag.draws:,} draws, one "
                "z ~ q(z|x) per image, with log q(z) = log (1/N) Σ_n q(z|x_n) summed over all N images; errors "
                f"are ±1 standard error over the draws. The two estimates sum to {diag.kl_mc:.3f} ± "
                f"{diag.kl_mc_stderr:.3f} nats against the exact {diag.kl:.3f} ({diag.split_check:+.1f} standard "
                "errors).")


def collapse_text(diag):
    d, kl = len(diag.kl_per_dim), diag.kl_per_dim
    idle = ~diag.active
    weak = diag.active & (kl < 0.1)
    text = (f"**Posterior collapse** is a dimension whose q(z_j|x) is the prior N(0, 1) for every image: it costs no "
            f"KL and tells the decoder nothing. Here {int(idle.sum())} of {d} dimensions are inactive, carrying "
            f"{kl[idle].sum():.3f} nats of the {diag.kl:.2f}-nat average KL")
    text += f", and {int(weak.sum())} more pass the activity threshold with under 0.1 nats each." if weak.any() else "."
    text += (f" The code carries I(x; z) = {diag.mutual_information:.2f} nats about which image it came from, "
             f"against a ceiling of log N = {diag.log_n:.2f} for {diag.num_images:,} images"
             + (" (this close to it, the estimate is held down by N: more images would raise it and lower the "
                "marginal term)" if diag.mutual_information > 0.9 * diag.log_n else "") + "; the other "
             f"{diag.marginal_kl:.2f} nats of the KL pay for q(z) not matching the prior. Collapse is what the ELBO "
             "asks for when the decoder can model x without that dimension (a few unused dimensions are free and "
             "harmless); it is a problem when it takes all of them, I(x; z) near 0, as a too-strong decoder, a "
             "large β or a lagging encoder cause. The β sweep below makes it happen.")
    st.markdown(text)


def traversals(run, diag, diagnostics):
    st.subheader("Traversals, ordered by KL")
    d = len(diag.kl_per_dim)
    c1, c2 = st.columns(2)
    index = c1.number_input("Test image", 0, len(run.x) - 1, 0, key=P + "index", bind="query-params",
                            persist_state="session")
    everything = d <= SHOWN_DIMS or c2.toggle(f"show all {d} dimensions", key=P + "all_dims", bind="query-params")
    order = diag.order if everything else np.concatenate([diag.order[:8], diag.order[-4:]])
    trav = cache.traversal(run.key, int(index), tuple(int(j) for j in order), 3.0, 9, run.model, run.x)
    labels = [f"z{j + 1} · KL {diag.kl_per_dim[j]:.2f} · Δ {c:.3f}" for j, c in zip(trav.dims, trav.change)]
    widgets.chart(
        plots.traversal_mosaic(trav.images.reshape(len(order), 9, *run.image_shape), trav.values, labels),
        toolbar=False, key="latent.traversal",
        caption=f"Each row decodes E[x|z] at the posterior mean of test image #{index} ({run.label(index)}) with one "
                "dimension set to −3, …, +3 (the prior's ±3σ), the others held. Δ is the mean over pixels of the "
                "largest change along the row: the dimensions with KL ≈ 0 change next to nothing, as the decoder "
                "learned to ignore them." + ("" if everything else " Shown: the 8 largest and 4 smallest KL."))


def ppca(run, diag, diagnostics):
    st.subheader("The linear VAE as probabilistic PCA")
    lam = cache.grey_level_eigenvalues(run.run.config.dataset)
    sigma = float(run.model.sigma)
    d = len(diag.kl_per_dim)
    predicted = diagnostics.ppca_kl_per_dim(lam, sigma, d)
    signal = int((lam > sigma ** 2).sum())
    shown = min(len(lam), max(d + 10, signal + 40))  # past the last eigenvalue above σ²
    widgets.chart(plots.ppca_spectrum(lam, sigma ** 2, diag.kl_per_dim, predicted, shown=shown))
    st.markdown(
        "With a linear decoder and a Gaussian likelihood the VAE's optimum is probabilistic PCA's (Lucas et al. "
        "2019): column j of W is u_j (λ_j − σ²)^½ when the data covariance's eigenvalue λ_j exceeds the noise σ², "
        f"else 0, and then KL_j = ½ log(λ_j/σ²). This run's σ = {sigma:.4f} (σ² = {sigma ** 2:.5f}); {signal} of the "
        f"{len(lam)} eigenvalues of its training images exceed σ², so PPCA would use {min(d, signal)} of its {d} "
        f"dimensions and collapse {d - min(d, signal)}, for a total KL of {predicted.sum():.2f} nats. The run has "
        f"{diag.active_units} active units and {diag.kl:.2f} nats; its {d}th eigenvalue is λ_{d} = {lam[d - 1]:.5f}, "
        f"{lam[d - 1] / sigma ** 2:.2f} × σ².")


def request_sweep():
    """The sweep button's callback: the sidebar's settings now, a fresh stamp, the job started."""
    config, error = sidebar.config_from_state()
    if config is None:
        return session.flash("error", f"Cannot start a β sweep: {error}")
    try:
        dataset = cache.dataset(config.dataset)
    except DataError as e:
        return session.flash("error", f"Cannot load the data set: {e}")
    stamp = beta_sweep.new_stamp()
    beta_sweep.start(server.checkpoints_root(), stamp, dataset, config, session.visitor())
    st.session_state.setdefault("latent.sweeps_started", []).append(stamp)
    st.session_state[P + "sweep"] = stamp


def measure_sweep(stamp: str, dataset_name: str):
    beta_sweep.start(server.checkpoints_root(), stamp, cache.dataset(dataset_name))


def sweep_section():
    st.subheader("Collapse on demand: a β sweep")
    cfg = beta_sweep.sweep_config(active.settings().config) if active.settings().config else None
    betas = ", ".join(f"{b:g}" for b in beta_sweep.BETAS)
    st.markdown(f"Trains {len(beta_sweep.BETAS)} short runs at β ∈ {{{betas}}}, loss = −E_q[log p(x|z)] + β·KL, "
                "with the sidebar's hyperparameters"
                + (f" ({cfg.epochs} epoch{'s' if cfg.epochs > 1 else ''} each: at most {beta_sweep.SWEEP_EPOCHS}; "
                   "the ELBO objective)" if cfg else "") + ", one at a time under the server's training cap. They are "
                "kept as ordinary runs named beta-sweep-<time>-b<β>.")
    root, me = server.checkpoints_root(), session.visitor()
    found = beta_sweep.sweeps_on_disk(root, lambda n: catalog.owner(n, root) in (None, me))
    stamps = sorted(set(found) | set(st.session_state.get("latent.sweeps_started", [])), reverse=True)
    running = any(j is not None and j.running for j in (beta_sweep.job(root, s) for s in stamps))
    st.button("Run a β sweep", key="latent.sweep_button", type="primary", on_click=request_sweep,
              disabled=cfg is None or running, icon=":material/play_arrow:",
              help="A sweep is running." if running else "Short trainings with the sidebar's settings.")
    if not stamps:
        return st.info("No β sweep on this server yet.")
    stamp = st.selectbox("Sweep", stamps, key=P + "sweep", bind="query-params", format_func=lambda s: (
        f"{s[:4]}-{s[4:6]}-{s[6:8]} {s[9:11]}:{s[11:13]}:{s[13:]}"))
    sweep_result(root, stamp, found.get(stamp, {}))


def sweep_result(root, stamp: str, on_disk: dict):
    j = beta_sweep.job(root, stamp)
    if j is None:
        first = next(iter(on_disk.values()), None)
        if first is None:
            return st.info("This sweep has no run on disk.")
        dataset_name = cache.run_summary(catalog.ref(first))["config"]["dataset"]
        return st.button("Measure this sweep", key="latent.sweep_measure", on_click=measure_sweep,
                         args=(stamp, dataset_name), help=f"Its {len(on_disk)} runs on disk, measured again.")
    if j.running:
        st.button("Stop the sweep", key="latent.sweep_stop", on_click=j.cancel, icon=":material/stop_circle:")
        st.caption(beta_sweep.phase(j))
        return widgets.poll_jobs({"β sweep": j}, unit="runs")
    if j.error is not None:
        return st.error(f"The sweep failed: {j.error_text}")
    result = j.result
    for beta, why in result.problems.items():
        st.warning(f"β = {beta:g}: {why}")
    if result.rows:
        sweep_chart(result.rows)


def sweep_chart(rows):
    r0 = rows[0]
    widgets.chart(plots.beta_sweep_curves(rows, r0["latent_dim"]), key="latent.sweep_chart",
                  caption=f"Each point is one run, measured on the first {r0['images']:,} test images: active units "
                          "and I(x; z) as above; log p(x) by importance sampling with K = "
                          f"{r0['k']} draws from q(z|x); the ELBO and reconstruction term E_q[log p(x|z)] = ELBO + KL "
                          "from the same draws. Error bars: ±1 standard error over the images.")
    lo, hi = min(rows, key=lambda r: r["beta"]), max(rows, key=lambda r: r["beta"])
    best = max(rows, key=lambda r: r["log_px"])
    st.markdown(f"From β = {lo['beta']:g} to β = {hi['beta']:g} the active units go from {lo['active_units']} to "
                f"{hi['active_units']} of {r0['latent_dim']}, the average KL from {lo['kl']:.2f} to {hi['kl']:.2f} "
                f"nats and I(x; z) from {lo['mutual_information']:.2f} to {hi['mutual_information']:.2f}, while the "
                f"reconstruction term goes from {lo['recon']:.1f} to {hi['recon']:.1f}: a larger β buys a cheaper "
                f"code with worse reconstructions. log p(x), what the model is worth, is highest at β = "
                f"{best['beta']:g} ({best['log_px']:.1f} ± {best['log_px_se']:.1f}), and the gap log p(x) − ELBO "
                f"goes from {lo['log_px'] - lo['elbo']:.1f} to {hi['log_px'] - hi['elbo']:.1f} nats.")
    st.dataframe([{k: round(r[k], 3) if isinstance(r[k], float) else r[k]
                   for k in ("beta", "run", "active_units", "kl", "mutual_information", "recon", "elbo", "log_px",
                             "log_px_se")} for r in rows], hide_index=True)


def latent_page():
    st.title("Latent diagnostics")
    run = active.active_run()
    from vae_tf import diagnostics  # after the title: it imports TensorFlow

    st.markdown(f"Run **{run.name}**: what each of its {run.run.config.latent_dim} latent dimensions carries about "
                "the test images, which ones the model has given up (posterior collapse), and what each does to an "
                "image.")
    n, seed = choices(len(run.x))
    diag = cache.latent_diagnostics(run.key, int(n), int(seed), run.model, run.x)
    information(diag)
    collapse_text(diag)
    traversals(run, diag, diagnostics)
    cfg = run.run.config
    if cfg.decoder == "linear" and cfg.likelihood == "gaussian":
        ppca(run, diag, diagnostics)
    sweep_section()


links.run_page(latent_page)

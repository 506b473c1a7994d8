"""How tight is the bound? The ladder ELBO ≤ ELBO(q*) ≤ log p(x), with L_K, AIS and BDMC, on the active run."""
import numpy as np
import streamlit as st

from ui import active, bound_text, bounds, cache, estimates, links, server, widgets
from ui.escape import md
from vae_tf import plots

P = "page.bound."
STARTS = {"the prior": "prior", "q(z|x)": "posterior"}
INTRO = ("The ELBO is a lower bound on log p(x); how loose is it, and why? Below, for the first test images: the "
         "ELBO of the encoder's q(z|x); **ELBO(q\\*)**, the ELBO of the best Gaussian fitted to each image on its "
         "own; **L_K**, importance sampling with K draws from q; **AIS**, annealed importance sampling from the "
         "prior (Neal 2001), which does not rely on q; and log p(x) itself where it can be computed. The gap "
         "log p(x) − ELBO splits into the **amortization gap** ELBO(q\\*) − ELBO, what one encoder for every image "
         "loses, and the **approximation gap** log p(x) − ELBO(q\\*), what no Gaussian of the family can do "
         "(Cremer, Li & Duvenaud, 2018). **BDMC** (Grosse et al., 2015) checks AIS on images simulated from the "
         "model, where an upper bound exists too.")
LADDER = ("Each point is one estimate, in nats per image; bars: ±2 Monte-Carlo standard errors (for the mean: with "
          "the images held fixed, √(Σ seᵢ²)/n, since every rung is on the same images). Diamonds are exact (no "
          "sampling error). The dashed line is the panel's last rung. Guaranteed in expectation: ELBO ≤ ELBO(q\\*) ≤ "
          "log p(x), ELBO ≤ L_K ≤ log p(x), AIS ≤ log p(x) ≤ reverse AIS; ELBO(q\\*) and L_K are not ordered.")
BDMC_PANEL = " The BDMC panel is on {m} images simulated from the model, not on the test images."
GAP = ("Per test image and on average, log p(x) − ELBO stacked as its two parts: the amortization gap ELBO(q\\*) − "
       "ELBO (light) and the approximation gap log p(x) − ELBO(q\\*) (dark), log p(x) from {ref}. Bars: ±2 "
       "Monte-Carlo standard errors of each part (the mean's with the images held fixed). A part below zero is "
       "Monte-Carlo noise, or an estimate of log p(x) that fell below ELBO(q\\*).")
MAP = ("Blue: log p(z|x) of image #{i} on a grid, over its top {floor:.0f} nats, so that a weak mode shows beside "
       "the main one (the True posterior page shows the density itself). Orange: the encoder's q(z|x) (1σ, 2σ, its "
       "mean ×). Violet: q\\*, the best {family} Gaussian for this image, found by L-BFGS starting from q: it "
       "climbs to the nearest optimum of the ELBO, so as a rule it keeps to the mode q sits on. Teal: the last states "
       "of the {c} AIS chains, started at draws from {start} and annealed to p(z|x), each sized by its share of the "
       "weight; weighted so, they are draws from the posterior{where}.")


def question():
    with st.form("bound.form", border=True):
        c = st.columns(8)
        d = bounds.DEFAULT
        n = c[0].number_input("Test images", 2, 100, d.n, key=P + "n", bind="query-params", persist_state="session",
                              help="The first n test images.")
        k = c[1].select_slider("K for L_K", estimates.K_CHOICES, value=d.k, key=P + "k", bind="query-params",
                               persist_state="session", help="Importance samples per image from q(z|x).")
        steps = c[2].select_slider("AIS temperatures", bounds.STEP_CHOICES, value=d.steps, key=P + "steps",
                                   bind="query-params", persist_state="session",
                                   help="Intermediate distributions from the prior to the posterior (BDMC too).")
        chains = c[3].select_slider("AIS chains", bounds.CHAIN_CHOICES, value=d.chains, key=P + "chains",
                                    bind="query-params", persist_state="session", help="Independent chains per image.")
        bdmc = c[4].number_input("BDMC images", 0, 32, d.bdmc_images, key=P + "bdmc", bind="query-params",
                                 persist_state="session", help="Images simulated from the model for BDMC (0: none).")
        family = c[5].radio("q* family", ["diagonal", "full covariance"], key=P + "family", bind="query-params",
                            persist_state="session", help="Diagonal: the encoder's own family.")
        start = c[6].radio("AIS starts at", list(STARTS), key=P + "start", bind="query-params", persist_state="session",
                           help="The prior: AIS finds every mode of the posterior, but a narrow posterior needs many "
                                "temperatures. q(z|x): far fewer when q is close to the posterior, but blind to the "
                                "modes q misses.")
        seed = c[7].number_input("Seed", 0, 2**31 - 1, d.seed, key=P + "seed", bind="query-params",
                                 persist_state="session")
        submitted = st.form_submit_button("Compute", type="primary", icon=":material/calculate:")
    q = bounds.Question(int(n), int(k), int(steps), int(chains), family != "diagonal", int(bdmc), int(seed),
                        STARTS[start])
    return q, submitted


def jobs_for(run, q, submitted: bool) -> dict:
    """The question's jobs: started if asked (a click), small enough, or already asked by someone."""
    if submitted:
        bounds.forget_failed(run.key, q)
    found = bounds.find(run.key, q, run.run.config.latent_dim)
    asked = all(found.get(name) is not None for name in ("ais", "q*"))
    if not (submitted or q.small or asked):
        st.info(f"{q.n} images × {q.steps} temperatures × {q.chains} chains (and BDMC on {q.bdmc_images}) is more "
                "than the page computes on its own (a link never starts a large job): press **Compute**.")
        st.stop()
    jobs = bounds.start(run.model, run.x, run.key, q)
    bounds.progress_panel(jobs, P)
    for name, job in jobs.items():
        if job is not None and not job.running and job.error is not None:
            label = bounds.LABELS[name][0]
            what = "was stopped" if "stopped" in job.error_text else f"failed: {md(job.error_text)}"
            st.warning(f"{label} {what}. Press **Compute** to run it again.")
    return {name: bounds.result(job) for name, job in jobs.items()}


def pick_image(run, n: int) -> int:
    c1, c2, c3 = st.columns([2, 2, 3], vertical_alignment="bottom")
    if st.session_state.get(P + "image", 0) >= n:
        st.session_state[P + "image"] = 0
    i = int(c1.number_input("Image", 0, n - 1, 0, key=P + "image", bind="query-params", persist_state="session",
                            help="One of the first n test images: its rungs are the ladder's first panel."))
    if run.y is not None:
        c2.markdown(f"#{i}: **{run.label(i)}**")
    if run.name == server.TWO_D_RUN and n > 5:
        c3.button("#5: q misses a mode", key="bound.preset5", on_click=st.session_state.__setitem__,
                  args=(P + "image", 5), help="On this run, image #5's q sits on a weak mode of its posterior.")
    return i


def ladder_section(parts: dict, i: int, q):
    st.subheader("(a) The ladder")
    panels = [(f"image #{i}", parts["rungs"](i)), (f"mean of the {q.n} images", parts["rungs"](None))]
    if parts["bdmc_rungs"]:
        panels.append((f"BDMC: {q.bdmc_images} simulated images", parts["bdmc_rungs"]))
    caption = LADDER + (BDMC_PANEL.format(m=q.bdmc_images) if parts["bdmc_rungs"] else "")
    widgets.chart(plots.ladder_chart(panels), caption, key=P + "ladder",
                  toolbar=False)  # the toolbar would cover the last panel's title
    for line in bound_text.sentences(parts, q, i):
        st.markdown("- " + line)


def gap_section(parts: dict, q):
    gap = parts["gap"]
    if gap is None:
        return
    st.subheader("(b) The gap's anatomy")
    n = len(gap.log_px)
    am, ap = gap.amortization_gap, gap.approximation_gap
    mc = lambda se: np.sqrt(np.sum(se ** 2)) / n  # noqa: E731
    fig = plots.gap_bars([f"#{j}" for j in range(n)] + ["mean"], [*am, am.mean()],
                         [*gap.amortization_gap_stderr, mc(gap.amortization_gap_stderr)], [*ap, ap.mean()],
                         [*gap.approximation_gap_stderr, mc(gap.approximation_gap_stderr)], parts["ref_method"])
    widgets.chart(fig, GAP.format(ref=parts["ref_method"]), key=P + "gap")


def posterior_section(run, parts: dict, i: int, q):
    ais, fit = parts["ais"], parts["q*"]
    if run.run.config.latent_dim != 2 or ais is None or fit is None:
        return
    from vae_tf.exact import mass_within

    st.subheader(f"(c) Image #{i}: AIS and q* over the true posterior")
    g = cache.grid_posterior(run.key, i, run.model, run.x)
    fig = plots.ais_on_posterior(g.z1, g.z2, g.log_posterior, g.q_loc, g.q_scale, fit.q_star.loc[i],
                                 fit.q_star.scale_tril[i], ais.final_z[:, i], ais.log_weights[:, i], view="log")
    where = (" wherever its mass is, whatever q covers" if ais.start == "prior" else
             " only as far as the annealing from q reaches: a mode far from q is found late or never")
    family = "full-covariance" if q.full else "diagonal"
    widgets.chart(fig, MAP.format(i=i, c=ais.num_chains, floor=plots.LOG_FLOOR, family=family, where=where,
                                  start="the prior" if ais.start == "prior" else "q(z|x)"), key=P + "map")
    st.markdown(bound_text.map_sentence(g, ais, i, mass_within(g.z1, g.z2, g.log_posterior, g.q_loc, g.q_scale)))


def table_section(run, parts: dict):
    rows = parts["table"]()
    if rows is None:
        return
    st.subheader("(d) Per image")
    st.dataframe(rows, hide_index=True, width="stretch",
                 column_config={c: st.column_config.NumberColumn(format="%.3f") for c in rows.columns
                                if c not in ("test_index", "label")})
    st.download_button("Per image (CSV)", rows.to_csv(index=False), f"{run.name}-bound.csv", "text/csv",
                       icon=":material/download:")


def bound_page():
    st.title("How tight is the bound?")
    run = active.active_run()
    st.markdown(f"Run **{run.name}**. " + INTRO)
    q, submitted = question()
    results = jobs_for(run, q, submitted)
    if results.get("is") is None and results.get("ais") is None and results.get("q*") is None:
        st.stop()  # nothing to draw yet: the progress above reruns the page when there is
    parts = bound_text.assemble(results, q, run.label if run.y is not None else None)
    i = pick_image(run, q.n)
    ladder_section(parts, i, q)
    gap_section(parts, q)
    posterior_section(run, parts, i, q)
    table_section(run, parts)


links.run_page(bound_page)

"""Why not sample the prior? The same importance-sampling estimator with p(z) as the proposal beside q(z|x)."""
import streamlit as st

from ui import active, cache, links, widgets
from vae_tf import plots

P = "page.prior."
INTRO = ("p(x) = ∫ p(x|z) p(z) dz, an average of p(x|z) over the prior, suggests the simplest estimator there is: draw "
         "z₁, …, z_k from the prior and average, p(x) ≈ (1/k) Σᵢ p(x|zᵢ). Doersch's tutorial (2016, p. 7) explains why "
         "a VAE does not do this: for a given image x almost every z from the prior explains it badly, p(x|z) is "
         "astronomically small for all but a sliver of the prior's mass, and k must be enormous before one draw lands "
         "in that sliver. Importance sampling with the encoder's q(z|x) as the proposal, (1/k) Σᵢ p(x|zᵢ)p(zᵢ)/q(zᵢ|x) "
         "with zᵢ ~ q(z|x), aims the draws where the posterior is. Below, both estimators on the same image, each "
         "repeated with different seeds.")
SHORT = "shortfall, log p(x) − L_k"
NUMBERS = ("mean log p̂(x)", "sd over repeats", "lowest", "highest", "mean ESS", SHORT)
SHORTFALL = ("Shortfall: the reference log p(x) minus the mean estimate, i.e. log p(x) − L_k for that proposal r: the "
             "downward bias of log p̂ with k draws from r (up to the repeats' Monte-Carlo error). At k = 1 it is "
             "KL(r ‖ p(z|x)): for the prior, KL(p(z) ‖ p(z|x)), not the ELBO's gap KL(q(z|x) ‖ p(z|x)) — only the row "
             "for q measures the encoder.")


def question(n_images: int) -> tuple[int, int, tuple]:
    c1, c2, c3 = st.columns(3, gap="medium")
    index = c1.number_input("Test image", 0, n_images - 1, 0, key=P + "image", bind="query-params",
                            persist_state="session")
    repeats = c2.slider("Repeats (seeds 0, 1, …)", 2, 16, 8, key=P + "repeats", bind="query-params",
                        persist_state="session", help="Each repeat draws its own samples: their spread is the "
                                                      "estimator's Monte-Carlo error.")
    k_max = c3.select_slider("Largest k", [100, 500, 1000, 2000, 5000], value=5000, key=P + "k",
                             bind="query-params", persist_state="session")
    return index, repeats, tuple(k for k in (1, 3, 10, 30, 100, 300, 1000, 3000, 5000) if k < k_max) + (k_max,)


def table(study, ref, k: int):
    rows = []
    for proposal in ("prior", "posterior"):
        s = study.summary(proposal)
        rows.append({"proposal": plots.PROPOSAL_NAMES[proposal], "k": k, "mean log p̂(x)": s["mean"][-1],
                     "sd over repeats": s["std"][-1], "lowest": s["min"][-1], "highest": s["max"][-1],
                     "mean ESS": s["ess_mean"][-1], SHORT: ref.log_px - s["mean"][-1]})
    st.dataframe(rows, hide_index=True,
                 column_config={c: st.column_config.NumberColumn(format="%.2f") for c in NUMBERS})
    st.caption(SHORTFALL)


def verdict(study, ref, k: int, latent_dim: int):
    prior, post = study.summary("prior"), study.summary("posterior")
    st.markdown(
        f"With k = {k:,} draws from the prior the weights are worth an ESS of **{prior['ess_mean'][-1]:.1f}** "
        f"draws (from q: **{post['ess_mean'][-1]:.0f}**). One or two lucky z carry the whole sum, so the estimate is "
        f"whatever those few happened to be: it scatters by {prior['std'][-1]:.1f} nats between seeds (q: "
        f"{post['std'][-1]:.2f}) and sits {ref.log_px - prior['mean'][-1]:.1f} nats under the reference on average "
        f"(q: {ref.log_px - post['mean'][-1]:.2f}): that shortfall is the estimator's bias, log p(x) − L_k for the "
        "proposal, not a gap of the ELBO. The log of an average of weights is biased low whenever the "
        "large weights are rarely drawn, so more repeats do not fix it; only a k comparable to the inverse of the "
        "prior mass of the posterior's region would. The encoder exists to avoid that: it points the draws at the "
        "region directly."
        + (" In a 2-D latent that region is a sizeable share of the prior, so the prior estimator merely wastes "
           "draws; with more latent dimensions the share shrinks exponentially, and it fails outright."
           if latent_dim <= 2 else ""))


def prior_sampling_page():
    st.title("Why not sample the prior?")
    run = active.active_run()
    st.markdown(INTRO)
    index, repeats, ks = question(len(run.x))
    study = cache.proposal_study(run.key, index, ks, repeats, run.model, run.x)
    ref = cache.reference(run.key, index, run.model, run.x)
    ref_name = {"exact": "exact log p(x) (closed form)", "grid": "log p(x) by grid integral",
                "quadrature": "log p(x) by quadrature (1-D latent)",
                "importance sampling": f"log p(x), q proposal, K = {cache.IS_K}"}[ref.method]
    widgets.chart(plots.proposal_comparison(study, ref.log_px, ref_name),
                  f"Left: each repeat's estimate with the first k of its draws (faint dots) and their mean ± one "
                  f"standard deviation; green: {ref_name}. Right: the effective sample size (Σw)²/Σw² of the k "
                  "weights, the number of equally weighted draws they are worth; the dashed line is a perfect "
                  "proposal, ESS = k.", toolbar=False)
    table(study, ref, ks[-1])
    verdict(study, ref, ks[-1], run.run.config.latent_dim)


links.run_page(prior_sampling_page)

"""Theory: the ELBO's derivation with the active run's own numbers substituted, term by term."""
import math

import numpy as np
import streamlit as st

from ui import active, cache, links, server, widgets
from vae_tf import plots

P = "page.theory."
S = cache.IS_K
KL_TEX = r"\tfrac{1}{2}\sum_{j}\big(\mu_j^2 + s_j^2 - \log s_j^2 - 1\big)"


def n(v: float, digits: int = 3) -> str:
    """A number for LaTeX, with fixed digits."""
    return f"{v:.{digits}f}"


def ub(v: float, label: str, digits: int = 3) -> str:
    """v with a brace under it naming it; label is LaTeX (math mode)."""
    return rf"\underbrace{{{n(v, digits)}}}_{{{label}}}"


def identity(d, ref):
    st.header("1 · The identity log p(x) = ELBO + KL(q ‖ p(z|x))")
    st.latex(r"\log p(x) = \mathbb{E}_{q(z|x)}\Big[\log \frac{p(x,z)}{p(z|x)}\Big]"
             r" = \underbrace{\mathbb{E}_{q(z|x)}\Big[\log \frac{p(x,z)}{q(z|x)}\Big]}_{\text{ELBO}}"
             r" + \underbrace{\mathbb{E}_{q(z|x)}\Big[\log \frac{q(z|x)}{p(z|x)}\Big]}"
             r"_{\mathrm{KL}(q(z|x)\,\|\,p(z|x))\;\ge\;0}")
    elbo = d.elbo.formula
    gap = ref.log_px - elbo
    sampled = ref.method == "importance sampling"  # then log p̂ − ELBO is L_K − ELBO, a lower estimate of the KL
    st.latex(ub(ref.log_px, r"\log \hat p_K(x)" if sampled else r"\log p(x)") + (r" \approx " if sampled else " = ")
             + ub(elbo, r"\text{ELBO}") + (" + " if gap >= 0 else " ")
             + ub(gap, r"L_K - \text{ELBO}\;\le\;\mathrm{KL}(q \,\|\, p(z|x))" if sampled
                  else r"\mathrm{KL}(q \,\|\, p(z|x))"))
    how = {"exact": "exactly, in closed form (a linear decoder with a Gaussian likelihood has "
                    "p(x) = N(x; b, WWᵀ + σ²I))",
           "grid": "by integrating p(x|z)p(z) over a fine grid of the 2-D latent",
           "importance sampling": f"by importance sampling with q as the proposal (K = {S:,}), whose expectation is "
                                  "the IWAE bound L_K: the true log p(x) is at least this on average, so the gap "
                                  "shown is L_K − ELBO, a lower estimate of the KL",
           "quadrature": "by integrating p(x|z)p(z) along the 1-D latent (quadrature)"}[ref.method]
    st.markdown(f"log p(x) is computed {how}. The ELBO is E_q[log p(x|z)] over the S draws minus the exact KL to "
                "the prior (section 3). The gap between them is the KL divergence from q(z|x) to the true posterior: "
                "how much the bound loses because the encoder is not the posterior."
                + (f" Integrated on its own, the same KL is **{ref.kl_q_posterior:.3f}** nats (the integrated "
                   "ELBO differs from the Monte-Carlo one by the draws' error)." if ref.kl_q_posterior is not None
                   else ""))


def jensen(d, imp):
    st.header("2 · Jensen's view")
    st.latex(r"\log p(x) = \log \mathbb{E}_{q}\Big[\frac{p(x,z)}{q(z|x)}\Big] \;\ge\; "
             r"\mathbb{E}_{q}\Big[\log \frac{p(x,z)}{q(z|x)}\Big] = \text{ELBO}"
             r"\qquad(\log \text{ is concave})")
    st.latex(r"\log \frac{1}{S}\sum_{s=1}^{S} w_s = " + n(d.log_mean_w) + r"\;\ge\;"
             + n(d.mean_log_w) + r" = \frac{1}{S}\sum_{s=1}^{S} \log w_s,"
             r"\qquad w_s = \frac{p(x, z_s)}{q(z_s|x)}")
    st.markdown(f"The same {S:,} draws on both sides. The left side is the importance-sampling estimate of log p(x), "
                f"the estimator's own answer ({imp['log_px']:.3f} with the same seed); the right side is the ELBO "
                f"with the KL sampled too (its KL average, {d.kl_mc:.3f}, against the exact {d.kl.formula:.3f}). "
                "Taking the log after averaging the weights, not before, is the whole difference between the "
                "bound and the estimate; the IWAE bound L_k sits in between for k draws.")


def terms(d):
    st.header("3 · The ELBO, term by term")
    st.latex(r"\text{ELBO} = \mathbb{E}_{q(z|x)}[\log p(x|z)] - \mathrm{KL}(q(z|x)\,\|\,p(z)),\qquad "
             r"\mathrm{KL}(q(z|x)\,\|\,p(z)) = \tfrac{1}{2}\sum_{j=1}^{d}\big(\mu_j^2 + s_j^2 - \log s_j^2 - 1\big)")
    st.latex(ub(d.elbo.formula, r"\text{ELBO}") + " = " + ub(d.recon.formula, r"\mathbb{E}_q[\log p(x|z)]") + " - "
             + ub(d.kl.formula, r"\mathrm{KL}(q \,\|\, p(z))"))
    rows = [("E_q[log p(x|z)]", d.recon), ("KL(q(z|x) ‖ p(z))", d.kl), ("ELBO", d.elbo)]
    st.dataframe({"term": [t[0] for t in rows], "tfd objects": [t[1].tfd for t in rows],
                  "formula": [t[1].formula for t in rows], "|difference|": [t[1].difference for t in rows]},
                 hide_index=True, column_config={
                     "tfd objects": st.column_config.NumberColumn(format="%.4f"),
                     "formula": st.column_config.NumberColumn(format="%.4f"),
                     "|difference|": st.column_config.NumberColumn(format="%.1e")})
    st.caption("tfd objects: model.likelihood(z).log_prob(x) averaged over the draws, and tfd.kl_divergence(q, p(z)), "
               "in float32 as the model trains. Formula: the equations above in float64 numpy, from the decoder's raw "
               "outputs and q's μ and s. They differ only by float32 round-off.")


def loss(run, d):
    cfg = run.run.config
    st.header("4 · The loss a VAE minimises, −ELBO")
    st.markdown("**With a Gaussian decoder** p(x|z) = N(f(z), σ²I):")
    st.latex(r"-\text{ELBO} = \mathbb{E}_q\frac{\|x - f(z)\|^2}{2\sigma^2} + " + KL_TEX
             + r" + D\log\sigma + \tfrac{D}{2}\log 2\pi")
    if cfg.likelihood == "gaussian":
        st.latex(ub(d.loss, r"-\text{ELBO}") + " = " + ub(d.error_term, r"\mathbb{E}_q\|x-f(z)\|^2/(2\sigma^2)") + " + "
                 + ub(d.kl.formula, r"\mathrm{KL}") + (" + " if d.log_norm >= 0 else " ")
                 + ub(d.log_norm, r"D\log\sigma + \frac{D}{2}\log 2\pi"))
        st.markdown(f"with σ = {d.sigma:.5f}{' (learned)' if cfg.sigma == 'learned' else ''}, D = {d.num_pixels} and "
                    f"E_q‖x − f(z)‖² = {d.sq_error:.4f}. The constant does not move the gradient of the network "
                    "weights, but it does move a learned σ, and it is what makes the loss a negative log-density.")
    st.markdown(r"**With a Bernoulli decoder** $p(x|z) = \prod_i f_i(z)^{x_i}\,(1 - f_i(z))^{1 - x_i}$, "
                "f = sigmoid(logits):")
    st.latex(r"-\text{ELBO} = -\mathbb{E}_q\sum_{i=1}^{D}\big[x_i\log f_i(z) + (1 - x_i)\log(1 - f_i(z))\big] + "
             + KL_TEX)
    if cfg.likelihood == "bernoulli":
        st.latex(ub(d.loss, r"-\text{ELBO}") + " = " + ub(-d.recon.formula, r"\text{cross-entropy}") + " + "
                 + ub(d.kl.formula, r"\mathrm{KL}"))
    other = server.GAUSSIAN_RUN if cfg.likelihood == "bernoulli" else server.TWO_D_RUN
    if other != run.name:
        st.caption(f"The numbers above are this run's ({cfg.likelihood} decoder). The shipped run **{other}** shows "
                   f"the other {'Gaussian' if cfg.likelihood == 'bernoulli' else 'Bernoulli'} loss with its numbers.")
        widgets.offer_run(other, "Make it the active run.", "theory.use_other")


def gaussian_example(run, d, index: int):
    """A Gaussian-likelihood run's numbers for section 5: this run's if it has a closed-form log p(x), else the
    shipped linear-Gaussian run's."""
    from vae_tf.exact import has_closed_form  # TensorFlow is loaded by now

    model, cfg = run.model, run.run.config
    g = (run.key, model, run.x) if has_closed_form(model) else active.other_run(server.GAUSSIAN_RUN)
    if g is not None and (not has_closed_form(g[1]) or index >= len(g[2])):
        g = None
    gname = run.name if has_closed_form(model) else server.GAUSSIAN_RUN
    g_exact = gauss = gname_pi = g_ppca = None
    if cfg.likelihood == "gaussian":
        gauss, gname_pi = d, run.name
    if g is not None:
        g_exact = cache.exact_log_px(g[0], g[1], g[2])
        g_ppca = cache.ppca_test_log_px(g[1].config.dataset, g[1].config.latent_dim)
        if gauss is None:
            gauss, gname_pi = cache.derivation(g[0], index, S, 0, g[1], g[2]), gname
    return gauss, gname_pi, g_exact, gname, g_ppca


def pitfalls(run, d, ref, index: int):
    st.header("5 · Where write-ups go wrong")
    gauss, gname_pi, g_exact, gname, g_ppca = gaussian_example(run, d, index)
    st.markdown(
        f"**A log dropped inside the expectation.** The ELBO's first term is E_q[log p(x|z)], not E_q[p(x|z)]. "
        f"For this image E_q[p(x|z)] ≈ ${plots.log10_of_exp(d.log_mean_likelihood)}$, the likelihood of a whole "
        f"image of {d.num_pixels} pixels, so 'E_q[p(x|z)] − KL' is "
        + (f"just −KL = {-d.kl.formula:.3f} to every digit shown, whatever the decoder does"
           if d.log_mean_likelihood < 0 else "that huge density, whatever the KL does")
        + f"; the real term is E_q[log p(x|z)] = {d.recon.formula:.3f}. "
        f"(Its log, log E_q[p(x|z)] = {d.log_mean_likelihood:.3f}, is larger still: Jensen again.)")
    st.markdown(
        f"**The ½ of the Gaussian KL.** Σ_j (μ_j² + s_j² − log s_j² − 1) = {d.kl_without_half:.3f} is twice the KL "
        f"({d.kl.formula:.3f}); without the ½ the 'ELBO' would read {d.elbo.formula - d.kl.formula:.3f} instead of "
        f"{d.elbo.formula:.3f}, a β = 2 objective that pushes q toward the prior twice as hard.")
    if gauss is not None:
        st.markdown(
            f"**1/(2σ²) written as 1/(2πσ²).** The 2π belongs to the normaliser, (D/2)·log 2π, not to the exponent. "
            f"On run **{gname_pi}** (image #{index}), E_q‖x − f(z)‖²/(2σ²) = {gauss.error_term:.3f} but "
            f"E_q‖x − f(z)‖²/(2πσ²) = {gauss.error_term_with_pi:.3f}: the error term shrinks by π = {math.pi:.4f}, "
            "and a learned σ settles √π times too small.")
    else:
        st.markdown("**1/(2σ²) written as 1/(2πσ²).** The 2π belongs to the normaliser, (D/2)·log 2π, not to the "
                    "exponent; written inside, it shrinks the error term by π.")
    log_px_positive(run, ref, g_exact, gname, index, g_ppca)


def log_px_positive(run, ref, g_exact, gname, index: int, g_ppca=None):
    cfg = run.run.config
    if cfg.likelihood == "bernoulli":
        lp_note = (f"For this run's Bernoulli decoder it holds: p(x) is a probability, and log p(x) = "
                   f"{ref.log_px:.3f} ≤ 0. ")
    else:
        lp_note = ""
    if g_exact is not None:
        st.markdown(
            f"**'log p(x) ≤ 0'.** True for a probability, false for a density. {lp_note}A Gaussian decoder gives "
            f"grey levels a density, which exceeds 1 wherever σ is small: on run **{gname}** the exact log p(x) of "
            f"image #{index} is **{g_exact[index]:+.3f}** nats and the mean over all {len(g_exact):,} test images "
            f"is **{float(np.mean(g_exact)):+.2f}** (closed form, no sampling)"
            + (f", against **{float(np.mean(g_ppca)):+.2f}** for probabilistic PCA, the maximum-likelihood "
               "linear-Gaussian model of the same latent size fitted in closed form to the training images (Tipping "
               "& Bishop, 1999), the optimum this linear VAE's training should reach" if g_ppca is not None else "")
            + ". Densities of different σ or pixel scales do not compare with each other, nor with a Bernoulli "
            "model's probabilities.")
    else:
        st.markdown(f"**'log p(x) ≤ 0'.** True for a probability, false for a density. {lp_note}A Gaussian decoder "
                    "gives grey levels a density, which exceeds 1 wherever σ is small, so its log p(x) can be "
                    "positive.")


def theory_page():
    st.title("Theory, with this model's numbers")
    run = active.active_run()
    model, cfg = run.model, run.run.config
    c1, c2 = st.columns([1, 3], gap="large")
    with c1:
        index = st.number_input("Test image", 0, len(run.x) - 1, 0, key=P + "image", bind="query-params",
                                persist_state="session", help="Every number below is computed for this image.")
    d = cache.derivation(run.key, index, S, 0, model, run.x)
    ref = cache.reference(run.key, index, model, run.x)
    imp = cache.importance(run.key, index, S, 0, model, run.x)
    with c2:
        st.markdown(
            f"Run **{run.name}** ({cfg.likelihood} decoder, {cfg.latent_dim}-D latent), test image **#{index}**"
            + (f" ({run.label(index)})" if run.y is not None else "") + ". Notation: the encoder's "
            "q(z|x) = N(μ, diag s²) with μ, s ∈ ℝᵈ; the prior p(z) = N(0, I); the decoder's output f(z) for "
            f"D = {d.num_pixels} pixels. Expectations over q are averages over S = {S:,} draws z_s = μ + s ⊙ ε_s.")
    identity(d, ref)
    jensen(d, imp)
    terms(d)
    loss(run, d)
    pitfalls(run, d, ref, index)


links.run_page(theory_page)

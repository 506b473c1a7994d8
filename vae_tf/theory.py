"""The derivation's numbers for one image, each computed twice: by the tfd objects and by the formula.

    log p(x) = ELBO(x) + KL(q(z|x) ‖ p(z|x))
    ELBO(x)  = E_q[log p(x|z)] − KL(q(z|x) ‖ p(z))
    KL(q ‖ p(z)) = ½ Σ_j (μ_j² + s_j² − log s_j² − 1)                     (q = N(μ, diag s²), p(z) = N(0, I))
    Gaussian decoder:  −log p(x|z) = ‖x − f(z)‖²/(2σ²) + D·log σ + (D/2)·log 2π
    Bernoulli decoder: −log p(x|z) = −Σ_i [x_i log f_i(z) + (1 − x_i) log(1 − f_i(z))],  f = sigmoid(logits)

The expectation over q is a Monte-Carlo average over S draws z_s = μ + s·ε_s, with ε_s the very
draws `estimators.estimate_log_px(model, x[None], k=S, seed)` makes, so that the Jensen view here,
log (1/S) Σ w_s ≥ (1/S) Σ log w_s, reproduces that estimator's log p̂(x) and ELBO to the last digit.

Also: the best reference log p(x) for one image (exact.py's answers where they exist), and why the
prior is a hopeless proposal for importance sampling (Doersch 2016, p. 7).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from . import draws, estimators, exact
from .estimators import logsumexp

tfd = tfp.distributions
FORMULA_DRAWS = 1000  # draws per float64 chunk of the derivation's formulas

LOG_2PI = math.log(2 * math.pi)


@dataclass
class Term:
    """One quantity computed two ways, which must agree up to float32 round-off."""
    tfd: float
    formula: float

    @property
    def difference(self) -> float:
        return abs(self.tfd - self.formula)


@dataclass
class Derivation:
    likelihood: str  # "bernoulli" or "gaussian"
    num_samples: int  # S, the draws from q that estimate E_q[·]
    num_pixels: int  # D
    mu: np.ndarray  # (d,) q's mean
    s: np.ndarray  # (d,) q's standard deviations
    recon: Term  # E_q[log p(x|z)]
    kl: Term  # KL(q(z|x) ‖ p(z)), exact
    kl_mc: float  # the S-draw average of log q(z|x) − log p(z), for comparison
    mean_log_w: float  # (1/S) Σ log w_s, w = p(x, z)/q(z|x): the ELBO with the KL sampled too
    log_mean_w: float  # log (1/S) Σ w_s: the importance-sampling estimate of log p(x)
    log_mean_likelihood: float  # log E_q[p(x|z)] — what a dropped log computes the log of
    sigma: float | None = None  # the Gaussian decoder's σ
    sq_error: float | None = None  # E_q ‖x − f(z)‖² (Gaussian)
    log_norm: float | None = None  # D·log σ + (D/2)·log 2π (Gaussian)

    @property
    def elbo(self) -> Term:
        return Term(self.recon.tfd - self.kl.tfd, self.recon.formula - self.kl.formula)

    @property
    def loss(self) -> float:
        """The VAE's loss for this image, −ELBO (formula side)."""
        return -self.elbo.formula

    @property
    def error_term(self) -> float | None:
        """E_q ‖x − f(z)‖²/(2σ²), the Gaussian decoder's error term."""
        return None if self.sq_error is None else self.sq_error / (2 * self.sigma ** 2)

    # -- the pitfalls, as numbers ------------------------------------------------
    @property
    def kl_without_half(self) -> float:
        """Σ (μ² + s² − log s² − 1) with the ½ forgotten: twice the KL."""
        return 2 * self.kl.formula

    @property
    def error_term_with_pi(self) -> float | None:
        """E_q ‖x − f(z)‖²/(2πσ²): the normaliser's π slipped into the exponent's denominator."""
        return None if self.sq_error is None else self.sq_error / (2 * math.pi * self.sigma ** 2)

    @property
    def dropped_log_value(self) -> float:
        """E_q[p(x|z)] − KL: the ELBO with the log dropped inside the expectation. E_q[p(x|z)] is
        a probability (density) of a whole image, e^(−hundreds), so this is −KL to any precision."""
        return math.exp(self.log_mean_likelihood) - self.kl.formula if self.log_mean_likelihood < 700 else math.inf


def _draws(model, x, num_samples: int, seed: int):
    """q, and S draws z = μ + s·ε with estimate_log_px's noise for an image at batch position 0."""
    x = np.asarray(x, np.float32).reshape(1, -1)
    q = model.posterior(x)
    eps = draws.image_noise(seed, 0, num_samples, model.config.latent_dim)[:, None, :]  # (S, 1, d)
    z = q.bijector.forward(tf.constant(eps))
    return x, q, z


def _per_draw(model, xd, z) -> np.ndarray:
    """(S,) per draw z_s, from the decoder's raw output f(z_s) in float64: log p(x|z_s) = Σ x log f + (1 − x)
    log(1 − f) (Bernoulli), or ‖x − f(z_s)‖² (Gaussian); FORMULA_DRAWS draws at a time, so that the float64
    temporaries stay small whatever S."""
    z = tf.reshape(z, [-1, model.config.latent_dim])
    parts = []
    for i in range(0, int(z.shape[0]), FORMULA_DRAWS):
        out = model.decoder(z[i:i + FORMULA_DRAWS]).numpy().astype(np.float64)  # (≤ FORMULA_DRAWS, D)
        if model.config.likelihood == "bernoulli":
            # log f = −softplus(−l), log(1 − f) = −softplus(l): stable for large |logits| l
            parts.append(-(xd * np.logaddexp(0, -out) + (1 - xd) * np.logaddexp(0, out)).sum(1))
        else:
            parts.append(((xd - out) ** 2).sum(1))
    return np.concatenate(parts)


def derivation(model, x, num_samples: int = 5000, seed: int = 0) -> Derivation:
    """Every term of the ELBO of one image x (D,), each from the tfd objects and from its formula."""
    x, q, z = _draws(model, x, num_samples, seed)
    prior, lik = model.prior(), model.likelihood(z)
    # -- tfd's side
    ll_tfd = lik.log_prob(x).numpy()[:, 0].astype(np.float64)  # (S,) log p(x|z_s)
    kl_tfd = float(tfd.kl_divergence(q, prior).numpy()[0])
    log_q_minus_prior = (q.log_prob(z) - prior.log_prob(z)).numpy()[:, 0].astype(np.float64)
    # -- the formulas, in float64 numpy from the raw network outputs
    xd = x.astype(np.float64)
    mu, s = q.loc.numpy()[0].astype(np.float64), q.stddev().numpy()[0].astype(np.float64)
    D = x.shape[1]
    sigma = sq_error = log_norm = None
    per_draw = _per_draw(model, xd, z)
    if model.config.likelihood == "bernoulli":
        ll_formula = per_draw
    else:
        sigma = float(model.sigma.numpy())
        log_norm = D * math.log(sigma) + D / 2 * LOG_2PI
        ll_formula = -per_draw / (2 * sigma ** 2) - log_norm
        sq_error = float(per_draw.mean())
    kl_formula = 0.5 * float(np.sum(mu ** 2 + s ** 2 - np.log(s ** 2) - 1))
    log_w = ll_tfd - log_q_minus_prior
    S = num_samples
    return Derivation(
        likelihood=model.config.likelihood, num_samples=S, num_pixels=D, mu=mu, s=s,
        recon=Term(float(ll_tfd.mean()), float(ll_formula.mean())),
        kl=Term(kl_tfd, kl_formula), kl_mc=float(log_q_minus_prior.mean()),
        mean_log_w=float(log_w.mean()), log_mean_w=float(logsumexp(log_w) - math.log(S)),
        log_mean_likelihood=float(logsumexp(ll_tfd) - math.log(S)),
        sigma=sigma, sq_error=sq_error, log_norm=log_norm)


@dataclass
class Reference:
    """The best log p(x) available for one image, and how it was obtained."""
    log_px: float
    method: str  # "exact", "grid", "quadrature" or "importance sampling"
    detail: str
    kl_q_posterior: float | None = None  # the grid's or the quadrature's own KL(q ‖ p(z|x))


def reference_log_px(model, x, k: int = 5000, seed: int = 0) -> Reference:
    """Closed form for a linear-Gaussian model, a grid integral for a 2-D latent, quadrature for a 1-D one,
    else importance sampling."""
    x = np.asarray(x, np.float32).reshape(1, -1)
    if exact.has_closed_form(model):
        return Reference(float(exact.exact_log_px(model, x)[0]), "exact",
                         "closed form: p(x) = N(x; b, WWᵀ + σ²I)")
    if model.config.latent_dim == 2:
        g = exact.grid_posterior(model, x[0], n=101, max_n=201, tol=1e-2)
        return Reference(g.log_px, "grid", f"numerical integral over a {len(g.z1)}×{len(g.z2)} grid of z",
                         g.kl_q_posterior)
    if model.config.latent_dim == 1:
        line = exact.quadrature_posterior(model, x[0])
        return Reference(line.log_px, "quadrature", f"numerical integral over {len(line.z)} points of z",
                         line.kl_q_posterior)
    est = estimators.estimate_log_px(model, x, k=k, seed=seed)
    return Reference(float(est.log_px[0]), "importance sampling",
                     f"importance sampling with q as the proposal, K = {k}")


# -- why not sample the prior? ---------------------------------------------------------------------
@dataclass
class ProposalStudy:
    """log p̂_k(x) = log (1/k) Σ_{i≤k} w_i and the ESS of those k weights, for each proposal, k and repeat."""
    ks: tuple[int, ...]
    repeats: int
    log_px: dict  # proposal → (repeats, len(ks))
    ess: dict  # proposal → (repeats, len(ks))

    def summary(self, proposal: str) -> dict:
        est, ess = self.log_px[proposal], self.ess[proposal]
        spread = est.std(0, ddof=1) if self.repeats > 1 else np.full(len(self.ks), np.nan)
        return {"k": list(self.ks), "mean": est.mean(0), "std": spread,
                "min": est.min(0), "max": est.max(0), "ess_mean": ess.mean(0)}


def proposal_study(model, x, ks=(1, 10, 100, 1000, 5000), repeats: int = 8,
                   proposals=("prior", "posterior")) -> ProposalStudy:
    """For one image: importance sampling with each proposal, `repeats` times (seeds 0, 1, …).

    Repeat r draws max(ks) weights once (estimators.log_weights, seed r); the estimate with k
    samples uses the first k of them, which is what estimate_log_px(k=k, seed=r) computes."""
    x = np.asarray(x, np.float32).reshape(1, -1)
    ks = tuple(sorted({int(k) for k in ks}))
    K = ks[-1]
    out_px, out_ess = {}, {}
    for proposal in proposals:
        px, ess = np.empty((repeats, len(ks))), np.empty((repeats, len(ks)))
        for r in range(repeats):
            lw, _ = estimators.log_weights(model, x, K, proposal=proposal, seed=r)
            lw = lw[:, 0]
            for j, k in enumerate(ks):
                lse = logsumexp(lw[:k])
                px[r, j] = lse - math.log(k)
                ess[r, j] = math.exp(2 * lse - logsumexp(2 * lw[:k]))  # (Σw)² / Σw²
        out_px[proposal], out_ess[proposal] = px, ess
    return ProposalStudy(ks, repeats, out_px, out_ess)

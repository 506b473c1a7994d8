"""How tight is the bound? Every rung of the ladder for a set of images, and the evaluate CLI's fields for it.

    ELBO(q_enc) ≤ ELBO(q*) ≤ log p(x),     ELBO ≤ L_K ≤ log p(x),     E[AIS] ≤ log p(x) ≤ E[reverse AIS]

ELBO(q_enc) and ELBO(q*) come from the same fresh draws (gap.fit_q_star), L_K is importance sampling with q_enc
(estimators.estimate_log_px: E[log p̂_K] = L_K), AIS is forward annealing from the prior (ais.ais), and log p(x)
itself is known for a linear-Gaussian model (closed form) or a latent of one or two dimensions (quadrature, grid).
ELBO(q*) and L_K are not ordered in general: a large K can beat the best Gaussian, and a q that misses a mode
leaves L_K short whatever K. The approximation gap log p(x) − ELBO(q*) takes the best log p(x) at hand: exact
where known, else AIS. BDMC runs on images simulated from the model, so it bounds the error of AIS at these
settings on data like the model's own, not on the test images.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ESTIMATORS = ("is", "ais")
START_NAMES = {"prior": "the prior", "posterior": "q(z|x)"}


@dataclass(frozen=True)
class Rung:
    """One number of the ladder: its value, its Monte-Carlo standard error (0: exact), and how it was found."""
    name: str
    value: float
    stderr: float
    method: str


def _mean(values, stderr) -> tuple[float, float]:
    """The mean over images and its Monte-Carlo standard error with the images held fixed, √(Σ seᵢ²) / n."""
    v, s = np.asarray(values, np.float64), np.broadcast_to(np.asarray(stderr, np.float64), np.shape(values))
    return float(v.mean()), float(np.sqrt(np.sum(s ** 2)) / len(v))


def rungs(estimate=None, ais=None, gap=None, exact=None, exact_method: str | None = None, i: int | None = None,
          ais_label: str = "AIS") -> list[Rung]:
    """The ladder's rungs that are known, low to high in expectation, for image i or (i None) the mean over the
    images. Any piece may be None (not computed yet)."""
    pick = (lambda v, s: (float(np.asarray(v)[i]), float(np.broadcast_to(s, np.shape(v))[i]))) if i is not None \
        else _mean
    out = []
    if gap is not None:
        out.append(Rung("ELBO", *pick(gap.elbo_encoder, gap.elbo_encoder_stderr), "the encoder's q(z|x)"))
        family = "full-covariance" if gap.q_star.full else "diagonal"
        out.append(Rung("ELBO(q*)", *pick(gap.elbo_optimal_q, gap.elbo_optimal_q_stderr),
                        f"the best {family} Gaussian for each image"))
    elif estimate is not None:
        out.append(Rung("ELBO", *pick(estimate.elbo, np.full(estimate.num_images, np.nan)),
                        "the encoder's q(z|x), from the K draws (error not measured)"))
    if estimate is not None:
        out.append(Rung(f"L_{estimate.k}", *pick(estimate.log_px, estimate.log_px_mc_stderr),
                        f"importance sampling with q, K = {estimate.k}"))
    if ais is not None:
        out.append(Rung(ais_label, *pick(ais.log_px, ais.stderr),
                        f"AIS from {START_NAMES[ais.start]}, {ais.num_steps} temperatures × {ais.num_chains} chains"))
    if exact is not None:
        out.append(Rung("log p(x)", *pick(exact, np.zeros(len(exact))), exact_method or "exact"))
    return out


def reference(exact=None, exact_method: str | None = None, ais=None):
    """The best log p(x) at hand for the approximation gap: (values or an AISResult, its method's name)."""
    if exact is not None:
        return np.asarray(exact, np.float64), exact_method or "exact"
    if ais is None:
        raise ValueError("the approximation gap needs log p(x): an exact answer or an AIS estimate")
    return ais, "ais"


# -- the CLI's fields ----------------------------------------------------------------------------------------------
def _se(a) -> float:
    a = np.asarray(a, np.float64)
    return float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float("nan")


def ais_fields(out: dict, rows: list | None, r, elbo: np.ndarray):
    """AIS replaces importance sampling as log_px (and the gap log_px − elbo); the IS answer stays as is_log_px."""
    out.update(is_log_px=out["log_px"], is_log_px_stderr=out["log_px_stderr"], estimator="ais",
               log_px=float(r.log_px.mean()), log_px_stderr=_se(r.log_px), log_px_mc_stderr=r.summary()["mc_stderr"],
               gap=float(np.mean(r.log_px - elbo)), gap_stderr=_se(r.log_px - elbo), ais_steps=r.num_steps,
               ais_chains=r.num_chains, ais_leapfrog=r.num_leapfrog, ais_start=r.start,
               ais_acceptance=float(r.acceptance.mean()), ais_ess_mean=float(r.ess.mean()), ais_seconds=r.seconds)
    for row, lp, se, e in zip(rows or [], r.log_px, r.stderr, elbo):
        row.update(is_log_px=row.get("log_px"), is_log_px_stderr=row.get("log_px_stderr"), log_px=float(lp),
                   log_px_stderr=float(se), gap=float(lp - e))


def gap_fields(out: dict, rows: list | None, g, method: str):
    """elbo_optimal_q, amortization_gap, approximation_gap (means ± standard errors over images, and their
    Monte-Carlo errors with the images held fixed), per image with their Monte-Carlo errors."""
    s = g.summary()
    out.update(elbo_optimal_q=s["elbo_optimal_q"], elbo_optimal_q_stderr=s["elbo_optimal_q_stderr"],
               amortization_gap=s["amortization_gap"], amortization_gap_stderr=s["amortization_gap_stderr"],
               amortization_gap_mc_stderr=s["amortization_gap_mc_stderr"],
               approximation_gap=s["approximation_gap"], approximation_gap_stderr=s["approximation_gap_stderr"],
               approximation_gap_mc_stderr=s["approximation_gap_mc_stderr"], gap_anatomy_log_px=method,
               gap_anatomy_elbo=s["elbo_encoder"], q_star_family="full" if g.q_star.full else "diagonal",
               q_star_converged=s["converged"], q_star_seconds=g.seconds)
    cols = {"elbo_optimal_q": (g.elbo_optimal_q, g.elbo_optimal_q_stderr),
            "amortization_gap": (g.amortization_gap, g.amortization_gap_stderr),
            "approximation_gap": (g.approximation_gap, g.approximation_gap_stderr)}
    for j, row in enumerate(rows or []):
        for name, (v, se) in cols.items():
            row[name], row[name + "_stderr"] = float(v[j]), float(se[j])


def bdmc_fields(out: dict, b, exact=None, per_image: bool = False):
    """bdmc_lower ≤ log p(x) ≤ bdmc_upper on the simulated images (means), their width and errors; with
    per_image, bdmc_per_image: one entry per simulated image (they are not test images)."""
    s = b.summary()
    out.update(bdmc_lower=s["lower_mean"], bdmc_upper=s["upper_mean"], bdmc_width=s["width_mean"],
               bdmc_lower_mc_stderr=s["lower_mc_stderr"], bdmc_upper_mc_stderr=s["upper_mc_stderr"],
               bdmc_num_images=s["num_images"], bdmc_steps=s["num_steps"], bdmc_chains=b.lower.num_chains,
               bdmc_seconds=s["seconds"])
    if exact is not None:
        out["bdmc_exact_log_px"] = float(np.mean(exact))
    if per_image:
        out["bdmc_per_image"] = [
            {"index": j, "bdmc_lower": float(lo), "bdmc_upper": float(hi),
             **({"exact_log_px": float(exact[j])} if exact is not None else {})}
            for j, (lo, hi) in enumerate(zip(b.lower.log_px, b.upper.log_px))]


def add_fields(model, x, out: dict, est, estimator: str = "is", ais_steps: int = 500, ais_chains: int = 16,
               gap_anatomy: bool = False, full: bool = False, bdmc: bool = False, bdmc_images: int = 16,
               seed: int = 0, per_image: bool = False,
               progress: Callable[[str, int, int], None] | None = None) -> dict:
    """evaluate's dict `out` (and its per_image rows, if any) for images x with importance-sampling estimate est,
    plus: AIS as log_px (estimator "ais"), the gap's anatomy, BDMC on `bdmc_images` simulated images.
    progress(stage, done, total) hears each stage ("AIS", "q*", "BDMC")."""
    from . import ais as A
    from . import gap as G
    from .exact import exact_answer, exact_log_px, has_closed_form

    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}; got {estimator!r}")
    x = np.asarray(x, np.float32)[:est.num_images]
    rows = out.get("per_image")
    tell = (lambda stage: (lambda done, total: progress(stage, done, total))) if progress else (lambda stage: None)
    closed, integral = has_closed_form(model), model.config.latent_dim in (1, 2)
    r = None
    if estimator == "ais" or (gap_anatomy and not closed and not integral):
        r = A.ais(model, x, num_steps=ais_steps, num_chains=ais_chains, seed=seed, progress=tell("AIS"))
    if estimator == "ais":
        ais_fields(out, rows, r, est.elbo)
    else:
        out["estimator"] = "is"
    if gap_anatomy:
        if closed:
            known, method = exact_log_px(model, x), "exact"
        elif integral:  # the grid (2-D) or quadrature (1-D) integral, refined until it holds
            known = np.array([exact_answer(model, xi).log_px for xi in x])
            method = "grid" if model.config.latent_dim == 2 else "quadrature"
        else:
            known = method = None
        log_px, method = reference(known, method, r)
        gap_fields(out, rows, G.fit_q_star(model, x, full=full, seed=seed, progress=tell("q*")).given(log_px), method)
    if bdmc:
        b = A.bdmc(model, n=bdmc_images, num_steps=ais_steps, num_chains=ais_chains, seed=seed, progress=tell("BDMC"))
        bdmc_fields(out, b, exact_log_px(model, b.x) if closed else None, per_image)
    return out

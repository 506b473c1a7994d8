"""The bound page's numbers put together (which log p(x) the gap is measured against, the ladder's rungs, the
per-image table) and the sentences that say what each piece means for this run, with its numbers."""
from __future__ import annotations

import numpy as np
import pandas as pd

from vae_tf import ladder
from vae_tf.ladder import Rung

METHODS = {"closed form": "the closed form", "grid": "the grid integral", "quadrature": "quadrature",
           "ais": "AIS"}


def _mc(se) -> float:
    se = np.asarray(se, np.float64)
    return float(np.sqrt(np.sum(se ** 2)) / len(se))


def assemble(results: dict, q, label=None) -> dict:
    """From the finished jobs' results: est (importance sampling), exact answer and its method, ais, q* (the
    fit), gap (the fit with log p(x): exact where known, else AIS), the rungs of an image or the mean, BDMC's."""
    est = results["is"].estimate if results.get("is") is not None else None
    est = est if est is not None and est.num_images == q.n else None  # a stopped estimate has fewer images
    exact, method = None, None
    if results.get("is") is not None and results["is"].exact is not None:
        exact, method = results["is"].exact, "closed form"
    grid = results.get("grid")
    if exact is None and grid is not None and len(grid) == q.n:
        exact, method = grid.log_px, grid.method
    ais, fit, sandwich = results.get("ais"), results.get("q*"), results.get("bdmc")
    gap, ref_method = None, None
    if fit is not None and (exact is not None or ais is not None):
        ref, ref_method = ladder.reference(exact, method, ais)
        gap = fit.given(ref)
    parts = dict(est=est, exact=exact, method=method, ais=ais, fit=fit, gap=gap, sandwich=sandwich, label=label,
                 ref_method=METHODS.get(ref_method, ref_method), n=q.n)
    parts["q*"] = fit
    parts["rungs"] = lambda i: ladder.rungs(est, ais, fit, exact, METHODS.get(method, method), i)
    parts["bdmc_rungs"] = _bdmc_rungs(sandwich)
    parts["table"] = lambda: _table(parts)
    return parts


def _bdmc_rungs(sandwich) -> list[Rung]:
    if sandwich is None:
        return []
    s = sandwich.bdmc.summary()
    start = ladder.START_NAMES[sandwich.bdmc.lower.start]
    out = [Rung("AIS", s["lower_mean"], s["lower_mc_stderr"], f"forward AIS from {start}: a lower bound")]
    if sandwich.exact is not None:
        out.append(Rung("log p(x)", float(np.mean(sandwich.exact)), 0.0, "the closed form"))
    return out + [Rung("reverse AIS", s["upper_mean"], s["upper_mc_stderr"],
                       "reverse AIS from the simulating z: an upper bound")]


def _table(parts: dict) -> pd.DataFrame | None:
    est, ais, gap, fit = parts["est"], parts["ais"], parts["gap"], parts["fit"]
    if est is None and ais is None and fit is None:
        return None
    n = parts["n"]
    df = pd.DataFrame({"test_index": np.arange(n)})
    if parts["label"] is not None:
        df["label"] = [parts["label"](j) for j in range(n)]
    if fit is not None:
        df["ELBO"], df["ELBO(q*)"] = fit.elbo_encoder, fit.elbo_optimal_q
    if est is not None:
        df[f"L_{est.k}"], df[f"± L_{est.k}"] = est.log_px, est.log_px_mc_stderr
    if ais is not None:
        df["AIS"], df["± AIS"] = ais.log_px, ais.stderr
    if parts["exact"] is not None:
        df[f"log p(x), {parts['method']}"] = parts["exact"]
    if gap is not None:
        df["amortization gap"], df["approximation gap"] = gap.amortization_gap, gap.approximation_gap
    return df


# -- sentences ---------------------------------------------------------------------------------------------------
def sentences(parts: dict, q, i: int) -> list[str]:
    """One sentence per piece that is known, with this run's numbers (means over the images)."""
    out = []
    gap, est, ais = parts["gap"], parts["est"], parts["ais"]
    family = "full-covariance" if q.full else "diagonal"
    if gap is not None:
        total, am, ap = gap.total_gap.mean(), gap.amortization_gap.mean(), gap.approximation_gap.mean()
        out.append(f"**ELBO {gap.elbo_encoder.mean():.2f}**, what training maximised, is {total:.2f} nats per image "
                   f"below log p(x) (from {parts['ref_method']}) on these {q.n} images.")
        share = am / total if total > 0 else float("nan")
        verdict = ("most of this run's gap is the encoder's: one network for every image fits each posterior worse "
                   "than it could, so a better-trained or bigger encoder, or a few refinement steps per image, would "
                   "tighten the bound without a new family" if share > 0.5 else
                   "the encoder is not far from the best its family allows; most of what remains is the family's")
        out.append(f"**ELBO(q\\*) {gap.elbo_optimal_q.mean():.2f}**: the best {family} Gaussian per image gains "
                   f"{am:.2f} ± {_mc(gap.amortization_gap_stderr):.2f} nats over the encoder's q, the amortization "
                   f"gap ({share:.0%} of the total): {verdict}.")
        out.append(_approximation(ap, _mc(gap.approximation_gap_stderr), family, q.full))
    if est is not None:
        out.append(_l_k(parts, est))
    if ais is not None:
        out.append(_ais(parts, ais))
    if parts["bdmc_rungs"]:
        out.append(_bdmc(parts["sandwich"], q))
    if gap is not None:
        out.append(f"Image #{i}: the encoder loses {gap.amortization_gap[i]:.2f} nats to q\\*, and q\\* "
                   f"{gap.approximation_gap[i]:.2f} nats to log p(x).")
    return out


def _approximation(ap: float, se: float, family: str, full: bool) -> str:
    what = ("the posterior is, to within that, a Gaussian" if ap < 0.05 + 2 * se else
            "what no Gaussian can express about this model's posterior: skew, heavy tails, several modes"
            if full else "what a Gaussian with independent coordinates cannot express about this model's "
            "posterior: correlations between the latent coordinates, skew, several modes")
    return (f"**The approximation gap {ap:.2f} ± {se:.2f}** nats, log p(x) − ELBO(q\\*) = KL(q\\* ‖ p(z|x)): "
            f"{what}. Only a richer family than {family} Gaussians can recover it.")


def _l_k(parts: dict, est) -> str:
    ref = parts["exact"] if parts["exact"] is not None else (parts["ais"].log_px if parts["ais"] else None)
    text = f"**L_{est.k} {est.log_px.mean():.2f}**: importance sampling with K = {est.k} draws from q"
    if ref is None:
        return text + "."
    elbo = parts["fit"].elbo_encoder if parts["fit"] is not None else est.elbo
    total, got = float(np.mean(ref - elbo)), float(np.mean(est.log_px - elbo))
    text += f" recovers {got:.2f} of the {total:.2f} nats between the ELBO and log p(x) ({parts['ref_method']})"
    short = ref - est.log_px
    missed = np.flatnonzero((short > 1.0) & (short > 5 * est.log_px_mc_stderr))
    if len(missed):
        j = missed[np.argmax(short[missed])]
        return text + (f". On {len(missed)} of the {len(short)} images it falls more than a nat short with a far "
                       f"smaller error bar (worst: #{j}, {short[j]:.1f} nats short, ± {est.log_px_mc_stderr[j]:.2f}): "
                       "q misses part of those posteriors (it covers them too narrowly, or misses one of their modes), "
                       "and nothing in its draws says so.")
    return text + "."


def _ais(parts: dict, ais) -> str:
    text = (f"**AIS {ais.log_px.mean():.2f} ± {_mc(ais.stderr):.3f}** ({ais.num_steps} temperatures × "
            f"{ais.num_chains} chains from {ladder.START_NAMES[ais.start]}, {ais.seconds:.0f} s, acceptance "
            f"{ais.acceptance.mean():.2f})")
    if parts["exact"] is not None:
        err = ais.log_px - parts["exact"]
        return text + (f": {err.mean():+.3f} nats from {METHODS.get(parts['method'], parts['method'])} on average, "
                       f"within 0.1 nats on {int(np.sum(np.abs(err) < 0.1))} of {len(err)} images.")
    return text + (": the best estimate of log p(x) here. Its error bar is the spread of its chains; a bias every "
                   "chain shares does not show in it, which is what BDMC bounds.")


def _bdmc(sandwich, q) -> str:
    s = sandwich.bdmc.summary()
    text = (f"**BDMC**: on {s['num_images']} images simulated from this model, forward AIS ({s['lower_mean']:.2f}) "
            f"and reverse AIS ({s['upper_mean']:.2f}) sandwich log p(x) within {s['width_mean']:.2f} nats per image")
    if sandwich.exact is not None:
        text += f" (their exact answer: {np.mean(sandwich.exact):.2f})"
    return text + (f": at {q.steps} temperatures × {q.chains} chains AIS is about that close to the truth on data "
                   "like the model's own. Test images, which the model explains less well, can be harder.")


def map_sentence(g, ais, i: int, mass_in_q: float) -> str:
    """How the AIS weight and the posterior's mass sit relative to q (its 2σ ellipse)."""
    z = ais.final_z[:, i].astype(np.float64)
    w = np.exp(ais.log_weights[:, i] - ais.log_weights[:, i].max())
    inside = np.sum(((z - g.q_loc) / g.q_scale) ** 2, -1) <= 4.0
    return (f"Of p(z|x)'s mass, {_pct(mass_in_q)} lies inside q's 2σ ellipse (q keeps 86.5% there); of the AIS "
            f"chains' weight, {_pct(w[inside].sum() / w.sum())} ({int(inside.sum())} of {len(z)} chains).")


def _pct(share: float) -> str:
    return "under 0.01%" if 0 < share < 1e-4 else f"{100 * share:.2g}%"

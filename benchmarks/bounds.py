"""How tight is the bound: AIS and the per-image q* on the shipped default run's first 100 test images.

AIS at its defaults (500 temperatures, 16 chains and 2 pilot chains per image, 10 leapfrog steps): the
seconds of one cold run (compile included), then its leapfrog gradient evaluations per second warm, timed
in turn with the ceiling: TensorFlow's own matmul kernels alone on exactly the matmuls of one gradient
evaluation of log p(x|z) at AIS's rows per call (each decoder layer's forward product and its input
gradient dY·Wᵀ, down to z; no weight gradients). % ceiling = the share of the time the matmuls alone
would take. The BDMC sandwich at the same settings on images simulated from the model says how far
forward AIS is from log p(x) there. q*: the seconds of optimise_q on the same 100 images (compile
included), and the true ELBO it loses against q* fitted to 4 times as many draws.
"""
from __future__ import annotations

import time

import numpy as np

from .flops import layer_shapes
from .report import met
from .timing import interleaved_rates, matmul_chain

TARGETS = {"ais_pct_ceiling": 50.0, "ais_seconds": 120.0, "q_star_seconds": 60.0, "bdmc_width": 1.0}


def gradient_matmuls(config, num_pixels: int, rows: int):
    """(m, k, n, transpose_a, transpose_b) of one gradient of log p(x|z) in z: forward X·W and input
    gradient dY·Wᵀ of every decoder layer."""
    _, dec = layer_shapes(config, num_pixels)
    return [(rows, a, b, False, False) for a, b in dec] + [(rows, b, a, False, True) for a, b in dec]


def run_ais(model, x, cfg, ds, quick: bool, repeats: int, res: dict):
    from vae_tf import ais as A
    from vae_tf.draws import power_parts

    n, steps = len(x), 50 if quick else 500
    t = time.perf_counter()
    r = A.ais(model, x, num_steps=steps)
    res.update(ais_seconds=time.perf_counter() - t, ais_images=n, ais_steps=steps, ais_grad_evals=r.grad_evals,
               ais_log_px=float(r.log_px.mean()), ais_mc_stderr=r.summary()["mc_stderr"])
    chains = r.num_chains + 2
    rows = chains * power_parts(n, max(1, A.ROWS_PER_CALL // chains))[0]  # the largest batch's rows
    matmuls = gradient_matmuls(cfg, ds.num_pixels, rows)
    grad_flops = sum(2 * m * k * n_ for m, k, n_, _, _ in matmuls) / rows  # per gradient evaluation of one row
    ceiling, ceiling_flops = matmul_chain(matmuls)
    short = dict(num_steps=51)  # warm: the same compiled calls, a tenth of the temperatures
    evals = A.ais(model, x, **short).grad_evals
    rates = interleaved_rates({"ais": lambda: A.ais(model, x, **short), "ceiling": ceiling},
                              {"ais": evals, "ceiling": ceiling_flops / 1e9}, repeats)
    res.update(ais_grad_rate=rates["ais"], ceiling_ais_gflops=rates["ceiling"], ais_rows_per_call=rows,
               ais_pct_ceiling=100 * rates["ais"] * grad_flops / 1e9 / rates["ceiling"],
               ais_cold_grad_rate=r.grad_evals / res["ais_seconds"])
    print(f"AIS, defaults ({steps} temperatures × {r.num_chains} chains + 2 pilots × {r.num_leapfrog} leapfrog "
          f"steps), first {n} test images: {res['ais_seconds']:.0f} s cold ({r.grad_evals / 1e6:.1f} M gradient "
          f"evaluations, {res['ais_cold_grad_rate']:,.0f}/s with the compile); log p̂(x) {res['ais_log_px']:.2f} "
          f"± {res['ais_mc_stderr']:.3f} (MC, images fixed)")
    print(f"  ceiling: the decoder's {len(matmuls)} forward and input-gradient matmuls at {rows} rows, alone: "
          f"{rates['ceiling']:.1f} GFLOP/s")
    print(f"  warm: {rates['ais']:,.0f} gradient evaluations/s × {grad_flops / 1e6:.2f} MFLOP = "
          f"{rates['ais'] * grad_flops / 1e9:.1f} GFLOP/s, {res['ais_pct_ceiling']:.0f}% of the ceiling")


def run_bdmc(model, quick: bool, res: dict):
    from vae_tf import ais as A

    n, steps = (4, 50) if quick else (16, 500)
    t = time.perf_counter()
    s = A.bdmc(model, n=n, num_steps=steps).summary()
    res.update(bdmc_images=n, bdmc_steps=steps, bdmc_width=s["width_mean"], bdmc_lower=s["lower_mean"],
               bdmc_upper=s["upper_mean"], bdmc_seconds=time.perf_counter() - t)
    print(f"  BDMC at the same settings, {n} images simulated from the model: forward {s['lower_mean']:.2f} ≤ "
          f"log p(x) ≤ reverse {s['upper_mean']:.2f}, width {s['width_mean']:.3f} nats/image "
          f"({res['bdmc_seconds']:.0f} s)")


def run_q_star(model, x, quick: bool, res: dict):
    from vae_tf import gap as G

    t = time.perf_counter()
    q = G.optimise_q(model, x)
    res.update(q_star_seconds=time.perf_counter() - t, q_star_images=len(x),
               q_star_converged=int(q.converged.sum()), q_star_iterations=int(q.iterations.max()))
    m = 4 if quick else 10
    ref = G.optimise_q(model, x[:m], num_samples=512, tol=0, grad_tol=1e-5)
    sub = G.OptimalQ(q.loc[:m], q.scale_tril[:m], False, q.iterations[:m], q.converged[:m])
    e = G.gaussian_elbo(model, x[:m], [model.posterior(x[:m]), sub.distribution(), ref.distribution()], 4096, 1)
    loss = e[2][0] - e[1][0]
    res.update(q_star_amortization=float(np.mean(e[1][0] - e[0][0])), q_star_loss_vs_512=float(loss.mean()),
               q_star_loss_vs_512_max=float(loss.max()))
    print(f"q*, diagonal, first {len(x)} test images: {res['q_star_seconds']:.1f} s (compile included; "
          f"{res['q_star_converged']} converged, at most {res['q_star_iterations']} L-BFGS steps); on the first "
          f"{m}: ELBO(q*) − ELBO(q_enc) {res['q_star_amortization']:.3f}, and q* from 512 draws is better by "
          f"{res['q_star_loss_vs_512']:.4f} nats/image (at most {res['q_star_loss_vs_512_max']:.4f}; same 4096 "
          "fresh draws)\n")


def run_bounds(cfg, ds, quick: bool, repeats: int, res: dict):
    from .sampling import bench_model

    model, which = bench_model(cfg, ds.num_pixels)
    x = ds.test_images("bernoulli")[:20 if quick else 100]
    print(f"how tight is the bound: {which}")
    run_ais(model, x, cfg, ds, quick, repeats, res)
    run_bdmc(model, quick, res)
    run_q_star(model, x, quick, res)


def target_lines(res: dict) -> list[str]:
    if "ais_seconds" not in res:
        return []
    return [f"  AIS ≥ {TARGETS['ais_pct_ceiling']:.0f}% of the ceiling: {res['ais_pct_ceiling']:.0f}% "
            f"{met(res['ais_pct_ceiling'], TARGETS['ais_pct_ceiling'])}",
            f"  AIS {res['ais_images']} images ≤ {TARGETS['ais_seconds']:.0f} s: {res['ais_seconds']:.0f} s "
            f"{met(res['ais_seconds'], TARGETS['ais_seconds'], False)}",
            f"  BDMC width at {res['bdmc_steps']} temperatures ≤ {TARGETS['bdmc_width']:.0f} nat/image: "
            f"{res['bdmc_width']:.2f} "
            f"{met(res['bdmc_width'], TARGETS['bdmc_width'], False)}",
            f"  q* {res['q_star_images']} images ≤ {TARGETS['q_star_seconds']:.0f} s: {res['q_star_seconds']:.0f} s "
            f"{met(res['q_star_seconds'], TARGETS['q_star_seconds'], False)}"]

"""Compare runs: training curves on shared axes, and each run's ELBO, log p(x) and gap on the same images."""
import pandas as pd
import streamlit as st

from ui import common, compare, state
from vae_tf import plots_extra

s = common.settings()
st.title("Compare runs")
names = state.run_names(s.root)
if not names:
    st.info("There are no runs yet. Train one on the **Train** page.")
    st.stop()

P = "page.compare."
everything = compare.summaries(names)
if s.run_name in everything:  # by default: the active run and the runs comparable with it
    kind = lambda n: (everything[n]["config"]["dataset"], everything[n]["config"]["likelihood"])  # noqa: E731
    default = [n for n in everything if kind(n) == kind(s.run_name)][:4]
else:
    default = list(everything)[:3]
picked = st.multiselect("Runs", list(everything), default=default, key=P + "runs", bind="query-params",
                        persist_state="session", max_selections=8,
                        help="Runs on the same data set and likelihood compare in nats; others do not.")
if not picked:
    st.info("Pick at least one run.")
    st.stop()
summ = {n: everything[n] for n in picked}
if not compare.comparable(summ):
    st.warning("These runs differ in data set or likelihood: a Gaussian likelihood's log-density and a Bernoulli "
               "likelihood's log-probability are not on one scale, so compare their curves' shapes, not their "
               "heights.")

st.subheader("Training curves")
hist = compare.histories(picked)
spe = {n: summ[n]["meta"].get("steps_per_epoch", 1) for n in picked}
common.chart(plots_extra.compare_curves(hist, spe),
             "Lines: each run's per-step training values, smoothed; diamonds: the whole test set after each epoch "
             "(one sample per image, exact KL). On the ELBO panel higher is better; the other two show how each "
             "run splits it between reconstruction and the KL it pays for its codes.", key="compare.curves",
             toolbar=False)

st.subheader("Final numbers")
n, k, seed = compare.N_IMAGES, compare.K, compare.SEED
jobs = {name: compare.job(name) for name in picked}
missing = [name for name, j in jobs.items() if j is None]
c1, c2 = st.columns([3, 1])
c1.markdown(f"log p(x) by importance sampling (K = {k} samples, seed {seed}) on the first {n} test images, as on "
            "the **log p(x) vs ELBO** page: an estimate computed on either page is reused on the other.")
if c2.button(f"Estimate log p(x) of {len(missing)} run{'s' if len(missing) != 1 else ''}", key="compare.estimate",
             disabled=not missing, type="primary", icon=":material/calculate:", width="stretch"):
    for name in missing:
        jobs[name] = compare.start(name)

running = [name for name, j in jobs.items() if j is not None and j.running]
if running:
    @st.fragment(run_every=2.0)
    def progress():
        if not any(jobs[name].running for name in running):
            st.rerun()
        for name in running:
            j = jobs[name]
            st.progress(j.fraction, text=f"{name}: {j.done} of {j.total} images "
                                         f"(ETA {common.fmt_seconds(j.eta_seconds)})")
    progress()
for name, j in jobs.items():
    if j is not None and not j.running and j.error is not None:
        st.error(f"The estimate of {name} failed: {j.error_text}")

rows = []
for name in picked:
    c, final = summ[name]["config"], summ[name]["final"]
    est = compare.finished_estimate(name)
    sm = est.summary() if est is not None else {}
    rows.append({"run": name, "data": f"{c['dataset']}, {c['likelihood']}", "latent": c["latent_dim"],
                 "objective": c["objective"] + (f" k={c['mc_samples']}" if c["mc_samples"] > 1 else ""),
                 "epochs": summ[name]["meta"].get("epochs_done"), "test ELBO (all)": final.get("test_elbo"),
                 f"ELBO (first {n})": sm.get("elbo"), f"log p(x) (first {n})": sm.get("log_px"),
                 "gap": sm.get("gap")})
fmt = st.column_config.NumberColumn(format="%.2f")
numbers = ("test ELBO (all)", f"ELBO (first {n})", f"log p(x) (first {n})", "gap")
st.dataframe(pd.DataFrame(rows).astype({c: float for c in numbers}), hide_index=True,
             column_config={c: fmt for c in numbers})  # not yet estimated: None
estimated = [r for r in rows if r["gap"] is not None]
if estimated:
    common.chart(plots_extra.compare_finals([r["run"] for r in estimated], [r[f"ELBO (first {n})"] for r in estimated],
                                            [r[f"log p(x) (first {n})"] for r in estimated]),
                 f"Means over the first {n} test images: the ELBO (circles) and the importance-sampled log p(x) "
                 "(diamonds). The distance between them is the run's gap, KL(q(z|x) ‖ p(z|x)) on average: how much "
                 "its encoder misses the true posterior.", key="compare.finals")
    bounds = compare.bounds_table([r["run"] for r in estimated])
    st.dataframe(bounds, hide_index=True, column_config={c: fmt for c in bounds.columns if c not in ("run", "images")})
    st.caption("The bounds in order, ELBO = L₁ ≤ L₅ ≤ L₅₀ ≤ log p(x), from the same draws. A run trained on the IWAE "
               "objective with k samples maximised L_k rather than the ELBO: its q need not match the posterior, "
               "so expect a lower ELBO and a larger gap.")
elif any(r["test ELBO (all)"] is not None for r in rows):
    done = [r for r in rows if r["test ELBO (all)"] is not None]
    common.chart(plots_extra.compare_finals([r["run"] for r in done], [r["test ELBO (all)"] for r in done]),
                 "The test ELBO after each run's last epoch. Estimate log p(x) to see the gaps.", key="compare.finals")

st.subheader("A VAE beside an IWAE")
st.markdown("Two runs side by side on the same test images. By default the shipped pair trained alike, one on the "
            "ELBO and one on the IWAE bound L₅ (both with 5 samples per image per step).")
compare.pair_section("page.compare.pair.")

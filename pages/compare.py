"""Compare runs: training curves on shared axes, and each run's ELBO, log p(x) and gap on the same images."""
import pandas as pd
import streamlit as st

from ui import active, catalog, estimates, links, run_pair, session, widgets
from ui.escape import md
from vae_tf import plots

P = "page.compare."
N, K, SEED = estimates.DEFAULT_IMAGES, estimates.DEFAULT_K, estimates.DEFAULT_SEED
NUMBERS = ("test ELBO (all)", f"ELBO (first {N})", f"log p(x) (first {N})", "gap")
FMT = st.column_config.NumberColumn(format="%.2f")
CURVES = ("Lines: each run's per-step training values, smoothed; diamonds: the whole test set after each epoch (one "
          "sample per image, exact KL). On the ELBO panel higher is better; the other two show how each run splits "
          "it between reconstruction and the KL it pays for its codes.")
BOUNDS = ("The bounds in order, ELBO = L₁ ≤ L₅ ≤ L₅₀ ≤ log p(x), from the same draws. A run trained on the IWAE "
          "objective with k samples maximised L_k rather than the ELBO: its q need not match the posterior, so expect "
          "a lower ELBO and a larger gap.")


def pick_runs(everything: dict, active_name: str | None) -> list[str]:
    """By default the active run and the newest runs comparable with it (a run just trained is among them)."""
    newest = sorted(everything, key=lambda n: str(everything[n]["meta"].get("updated", "")), reverse=True)
    if active_name in everything:
        def kind(n):
            return everything[n]["config"]["dataset"], everything[n]["config"]["likelihood"]
        default = [active_name] + [n for n in newest if n != active_name and kind(n) == kind(active_name)][:3]
    else:
        default = newest[:3]
    return st.multiselect("Runs", list(everything), default=default, key=P + "runs", bind="query-params",
                          persist_state="session", max_selections=8,
                          help="Runs on the same data set and likelihood compare in nats; others do not.")


def estimate_buttons(picked: list[str]):
    jobs = {name: estimates.job(name) for name in picked}
    missing = [name for name, j in jobs.items() if j is None]
    c1, c2 = st.columns([3, 1])
    c1.markdown(f"log p(x) by importance sampling (K = {K} samples, seed {SEED}) on the first {N} test images, as "
                "on the **log p(x) vs ELBO** page: an estimate computed on either page is reused on the other.")
    if c2.button(f"Estimate log p(x) of {len(missing)} run{'s' if len(missing) != 1 else ''}", key="compare.estimate",
                 disabled=not missing, type="primary", icon=":material/calculate:", width="stretch"):
        for name in missing:
            jobs[name] = estimates.start(name)
    widgets.poll_jobs(jobs)
    for name, j in jobs.items():
        if j is not None and not j.running and j.error is not None:
            st.error(f"The estimate of {name} failed: {md(j.error_text)}")


def finals(picked: list[str], summ: dict) -> list[dict]:
    rows = []
    for name in picked:
        c, final = summ[name]["config"], summ[name]["final"]
        est = estimates.finished(name)
        sm = est.summary() if est is not None else {}
        rows.append({"run": name, "data": f"{c['dataset']}, {c['likelihood']}", "latent": c["latent_dim"],
                     "objective": c["objective"] + (f" k={c['mc_samples']}" if c["mc_samples"] > 1 else ""),
                     "epochs": summ[name]["meta"].get("epochs_done"), "test ELBO (all)": final.get("test_elbo"),
                     f"ELBO (first {N})": sm.get("elbo"), f"log p(x) (first {N})": sm.get("log_px"),
                     "gap": sm.get("gap")})
    table = pd.DataFrame(rows).astype({c: float for c in NUMBERS})
    st.dataframe(table.style.format({c: "{:.2f}" for c in NUMBERS}, na_rep="—"), hide_index=True)  # —: not yet
    return rows


def paired_differences(estimated: list[dict]):
    """Every other estimated run minus the first, image by image, where they model the same data alike."""
    same = [r["run"] for r in estimated if r["data"] == estimated[0]["data"]]
    if len(same) < 2:
        return
    diff = estimates.paired_table(same[0], same)
    st.markdown(f"**Each run minus {same[0]}**, on the same first {N} test images:")
    st.dataframe(diff, hide_index=True, column_config={c: FMT for c in diff.columns if c.startswith(("Δ", "±"))})
    st.caption(estimates.PAIRED_CAPTION)


def final_charts(rows: list[dict]):
    estimated = [r for r in rows if r["gap"] is not None]
    if estimated:
        widgets.chart(plots.compare_finals([r["run"] for r in estimated], [r[f"ELBO (first {N})"] for r in estimated],
                                           [r[f"log p(x) (first {N})"] for r in estimated]),
                      f"Means over the first {N} test images: the ELBO (circles) and the importance-sampled log p(x) "
                      "(diamonds). The distance between them is the run's gap L_K − ELBO, a lower estimate of its "
                      "average KL(q(z|x) ‖ p(z|x)): how much its encoder misses the true posterior.",
                      key="compare.finals")
        bounds = estimates.bounds_table([r["run"] for r in estimated])
        numbers = [c for c in bounds.columns if c not in ("run", "images")]
        st.dataframe(bounds, hide_index=True, column_config={c: FMT for c in numbers})
        st.caption(BOUNDS)
        paired_differences(estimated)
    elif any(r["test ELBO (all)"] is not None for r in rows):
        done = [r for r in rows if r["test ELBO (all)"] is not None]
        widgets.chart(plots.compare_finals([r["run"] for r in done], [r["test ELBO (all)"] for r in done]),
                      "The test ELBO after each run's last epoch. Estimate log p(x) to see the gaps.",
                      key="compare.finals")


def compare_page():
    s = active.settings()
    st.title("Compare runs")
    everything = catalog.summaries(catalog.visible(catalog.names(s.root), session.visitor(),
                                                   bool(st.session_state.get(session.SHOW_OTHERS))))
    if not everything:
        st.info("There are no runs yet. Train one on the **Train** page.")
        st.stop()
    picked = pick_runs(everything, s.run_name)
    if not picked:
        st.info("Pick at least one run.")
        st.stop()
    summ = {n: everything[n] for n in picked}
    if not catalog.comparable(summ):
        st.warning("These runs differ in data set or likelihood: a Gaussian likelihood's log-density and a Bernoulli "
                   "likelihood's log-probability are not on one scale, so compare their curves' shapes, not their "
                   "heights.")
    st.subheader("Training curves")
    spe = {n: summ[n]["meta"].get("steps_per_epoch", 1) for n in picked}
    widgets.chart(plots.compare_curves(catalog.histories(picked), spe), CURVES, key="compare.curves", toolbar=False)
    st.subheader("Final numbers")
    estimate_buttons(picked)
    final_charts(finals(picked, summ))
    st.subheader("A VAE beside an IWAE")
    st.markdown("Two runs side by side on the same test images. By default the shipped pair trained alike, one on the "
                "ELBO and one on the IWAE bound L₅ (both with 5 samples per image per step).")
    run_pair.section("page.compare.pair.")


links.run_page(compare_page)

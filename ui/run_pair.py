"""A VAE beside an IWAE: two runs' ELBO, IWAE bounds L_k, log p(x) and gap on the same test images.

Drawn by the log p(x) and Compare pages, from the shared log p(x) jobs (ui.estimates), so a run
estimated on either page is answered at once on the other.
"""
from __future__ import annotations

import streamlit as st

from vae_tf import plots

from . import catalog, estimates, server, widgets
from .escape import md

N_IMAGES, K, SEED = estimates.DEFAULT_IMAGES, estimates.DEFAULT_K, estimates.DEFAULT_SEED


def _pick(prefix: str, names: list[str]) -> list[str]:
    defaults = [r for r in server.IWAE_PAIR if r in names] or names[:2]
    if len(defaults) < 2:
        defaults = (defaults + [r for r in names if r not in defaults])[:2]
    c1, c2 = st.columns(2)
    a = c1.selectbox("Run A", names, index=names.index(defaults[0]), key=prefix + "a", bind="query-params",
                     persist_state="session")
    b = c2.selectbox("Run B", names, index=names.index(defaults[1]), key=prefix + "b", bind="query-params",
                     persist_state="session")
    return [a] if a == b else [a, b]


def _estimates(prefix: str, pair: list[str]) -> bool:
    """Offer, start and follow the pair's estimates; True once every one has finished without error."""
    missing = [name for name in pair if estimates.job(name) is None]
    if missing and st.button(f"Estimate log p(x) of {', '.join(missing)}", key=prefix + "go", type="primary",
                             icon=":material/calculate:"):
        for name in missing:
            estimates.start(name)
    jobs = {name: estimates.job(name) for name in pair}
    widgets.poll_jobs(jobs)
    for name, j in jobs.items():
        if j is not None and not j.running and j.error is not None:
            st.error(f"The estimate of {name} failed: {md(j.error_text)}")
    return all(estimates.finished(name) is not None for name in pair)


def _verdict(table, lp: str, diff):
    r = table.set_index("run")
    a, b = list(table["run"])

    def one(name):
        return (f"**{name}** has ELBO {r.loc[name, 'ELBO']:.2f}, log p(x) {r.loc[name, lp]:.2f} and a gap "
                f"(L_K − ELBO) of {r.loc[name, 'gap']:.2f} nats")

    def delta(what):
        return f"{what} {diff.iloc[0][f'Δ {what}']:+.2f} ± {diff.iloc[0][f'± Δ {what}']:.2f}"
    st.markdown(
        f"On these images {one(a)}; {one(b)}. Image by image, {b} minus {a}: {delta('log p(x)')}, "
        f"{delta('ELBO')}, {delta('gap')} nats (mean ± paired standard error over the same "
        f"{int(diff.iloc[0]['images'])} images). An IWAE maximises L_k, not the ELBO: its encoder only has to "
        "propose useful samples, not to match the posterior, so its ELBO and its gap are usually worse while "
        "its log p(x) is as good or better (Burda et al., 2016; Cremer et al., 2018).")


def section(prefix: str):
    """The whole section, by default for the shipped VAE and IWAE trained alike."""
    names = catalog.names()
    if len(names) < 2:
        st.info("Two runs are needed; train another on the Train page.")
        return
    pair = _pick(prefix, names)
    summ = catalog.summaries(pair)
    if not catalog.comparable(summ):
        st.warning("These two runs differ in data set or likelihood: their nats are not on one scale.")
    for name in pair:
        st.caption(f"**{name}**: " + catalog.describe(summ[name]["config"]) if name in summ else name)
    if not _estimates(prefix, pair):
        return
    table = estimates.bounds_table(pair)
    lp = [c for c in table.columns if c.startswith("log p(x)")][0]
    rows = {"ELBO = L₁": table["ELBO"], "L₅": table["L_5"], "L₅₀": table["L_50"], f"log p(x), K = {K}": table[lp]}
    widgets.chart(plots.bound_comparison(list(table["run"]), {r: list(v) for r, v in rows.items()}),
                  f"Means over the first {N_IMAGES} test images, from one set of K = {K} draws per image: the ELBO, "
                  "the IWAE bounds L₅ and L₅₀, and the importance-sampled log p(x). Each run's line climbs by its "
                  "gap from the first point to the last.", key=prefix + "chart", toolbar=False)
    fmt = st.column_config.NumberColumn(format="%.2f")
    st.dataframe(table, hide_index=True, column_config={c: fmt for c in table.columns if c not in ("run", "images")})
    if len(table) == 2 and catalog.comparable(summ):
        diff = estimates.paired_table(table["run"].iloc[0], list(table["run"]))
        st.dataframe(diff, hide_index=True, column_config={c: fmt for c in diff.columns if c.startswith(("Δ", "±"))})
        st.caption(estimates.PAIRED_CAPTION)
        _verdict(table, lp, diff)

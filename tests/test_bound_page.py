"""The bound page through AppTest, on copies of the shipped runs: the ladder for the linear-Gaussian run with AIS
on its closed form, and for the 2-D run with AIS and q* over the grid posterior of image #5 (where q misses a
mode). Small questions through session state, so that the page starts them on its own."""
import numpy as np
import pytest
from conftest import make_lab, open_app, texts
from plotly_spec import charts

P = "page.bound."
FAST = {P + "steps": 500, P + "chains": 16, P + "bdmc": 2, P + "k": 1000}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = make_lab(tmp_path_factory, ("fashion-default", "fashion-linear-gaussian", "fashion-2d"))
    mp = pytest.MonkeyPatch()
    mp.setenv("VAE_LAB_CHECKPOINTS", str(root))
    yield root
    from ui import cache

    cache.job_registry().stop_all()  # no background job may outlive the tests
    mp.undo()


def open_bound(run: str, **session):
    """The page with its jobs finished: opened once (it starts them), then run again once they are done."""
    from ui import cache

    at = open_app(page="pages/bound.py", session={"run.active": run, **FAST, **session}, check=True)
    jobs = [j for k, j in list(cache.job_registry()._jobs.items()) if isinstance(k, tuple) and len(k) > 1
            and getattr(k[1], "name", None) == run]
    assert jobs and all(j.finished.wait(300) for j in jobs), [j.label for j in jobs if j.running]
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_ladder_on_the_closed_form(lab):
    """fashion-linear-gaussian, AIS from q (its posterior is one narrow Gaussian far inside the prior, which AIS
    from the prior does not reach in 500 temperatures): every rung drawn, AIS within 0.1 nats of the exact answer
    the page shows, the gap split into its parts, and sentences with the numbers."""
    at = open_bound("fashion-linear-gaussian", **{P + "n": 4, P + "start": "q(z|x)"})
    table = at.dataframe[0].value
    exact, ais = table["log p(x), closed form"], table["AIS"]
    assert len(table) == 4 and abs(ais.mean() - exact.mean()) < 0.1
    assert np.all(table["ELBO"] <= table["ELBO(q*)"] + 0.05)
    np.testing.assert_allclose(table["amortization gap"] + table["approximation gap"], exact - table["ELBO"], atol=1e-6)
    ladder = charts(at)[0]
    names = [t["x"][0] for t in ladder["data"]]
    assert {"ELBO", "ELBO(q*)", "L_1000", "AIS", "log p(x)", "reverse AIS"} <= set(names)
    said = texts(at.markdown)
    assert "amortization gap" in said and "from the closed form on average" in said and "BDMC" in said
    assert f"{ais.mean():.2f}" in said


def test_ladder_and_posterior_map_of_the_2d_run(lab):
    """fashion-2d image #5: AIS from the prior lands within 0.2 nats of the grid integral where L_K is far short,
    the page says so, and its chains are drawn over the grid posterior beside q and q*."""
    at = open_bound("fashion-2d", **{P + "n": 6, P + "image": 5, P + "bdmc": 0})
    table = at.dataframe[0].value
    grid = table["log p(x), grid"]
    assert abs(table["AIS"][5] - grid[5]) < 0.2 and grid[5] - table["L_1000"][5] > 5
    said = texts(at.markdown)
    assert "#5" in said and "q misses part of those posteriors" in said
    fig = charts(at)[2]
    names = [t.get("name", "") for t in fig["data"]]
    assert "q*(z|x), 2σ" in names and "16 AIS chains, last state" in names
    chains = [t for t in fig["data"] if t.get("name") == "16 AIS chains, last state"][0]
    assert len(chains["x"]) == 16

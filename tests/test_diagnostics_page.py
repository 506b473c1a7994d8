"""The Latent diagnostics page (AppTest): its numbers on a shipped run, and a β sweep that trains its five runs
under a temporary checkpoints root and draws its curves."""
import time

import pytest

from conftest import make_lab, open_app, texts
from plotly_spec import charts

pytestmark = pytest.mark.app

TINY = {"hp.max_train_images": 512, "hp.epochs": 1, "hp.hidden": "32", "hp.latent_dim": 2, "hp.batch_size": 128}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    root = make_lab(tmp_path_factory, names=("fashion-2d",))
    mp.setenv("VAE_LAB_CHECKPOINTS", str(root))
    yield root
    mp.undo()


def test_the_page_shows_active_units_and_the_kl_split(lab):
    at = open_app(run="fashion-2d", page="pages/latent.py", session={"page.latent.images": 2000}, check=True)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["active units"].endswith("of 2")
    assert "±" in metrics["I(x; z), nats"] and "±" in metrics["KL(q(z) ‖ p(z)), nats"]
    shown = texts(at.markdown)
    assert "Posterior collapse" in shown and "log N = 7.60 for 2,000 images" in shown
    captions = texts(at.caption)
    assert "standard errors)" in captions and "dimensions with KL ≈ 0 change next to nothing" in captions
    titles = [c.get("layout", {}).get("xaxis", {}).get("title", {}).get("text", "") for c in charts(at)]
    assert "latent dimension, by KL" in titles


def test_a_beta_sweep_trains_its_runs_and_draws_its_curves(lab):
    from vae_tf import runs
    from ui import beta_sweep

    at = open_app(run="fashion-2d", page="pages/latent.py", session={**TINY, "page.latent.images": 1000}, check=True)
    at.button(key="latent.sweep_button").click().run()
    assert not at.exception, [e.message for e in at.exception]
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        time.sleep(3)
        at.run()
        if any(c.get("layout", {}).get("annotations") and "active units" in str(c["layout"]["annotations"])
               for c in charts(at)):
            break
    assert not at.exception, [e.message for e in at.exception]
    names = [n for n in runs.run_names(lab) if beta_sweep.NAME_RE.fullmatch(n)]
    assert sorted(float(beta_sweep.NAME_RE.fullmatch(n).group(2)) for n in names) == list(beta_sweep.BETAS)
    for name in names:  # ordinary runs: whole, with the sidebar's settings and their own β
        config = runs.read_config(lab / name)
        assert (config.latent_dim, config.hidden, config.epochs, config.max_train_images) == (2, (32,), 1, 512)
        assert runs.read_meta(lab / name)["status"] == "complete"
    sweep = next(c for c in charts(at) if "active units" in str(c["layout"].get("annotations")))
    lines = {t["name"]: t for t in sweep["data"]}
    assert [round(b, 3) for b in lines["active units"]["x"]] == list(beta_sweep.BETAS)
    assert all(0 <= a <= 2 for a in lines["active units"]["y"])
    assert len(lines["log p(x) (importance sampling)"]["error_y"]["array"]) == 5
    kl = lines["average KL"]["y"]
    assert kl[0] > kl[-1]  # β = 8 pays more for each nat of KL than β = 0.5: it keeps fewer
    assert "From β = 0.5 to β = 8 the active units go from" in texts(at.markdown)

"""AIS and BDMC against exact answers.

Linear-Gaussian model x = Wz + b + σε: log p(x) = log N(x; b, WWᵀ + σ²I) in closed form, and simulated data
comes with exact posterior draws (the z it was made from). A 2-D latent with a bimodal posterior: log p(x)
by a grid integral, and an encoder whose q sits on the weaker mode, so importance sampling with q misses
the other one.
"""
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_memory_script
from vae_tf import ais as A
from vae_tf.config import Config
from vae_tf.estimators import Cancelled, estimate_log_px
from vae_tf.exact import exact_log_px, grid_log_px
from vae_tf.model import VAE


# -- models ----------------------------------------------------------------------------------------------------
def linear_gaussian(D=24, d=3, sigma=0.5, seed=0, scale=0.5, W=None):
    """A linear-Gaussian VAE with chosen W (D, d) and b (the dec_out kernel is Wᵀ); encoder untrained."""
    model = VAE(Config(latent_dim=d, hidden=(16,), decoder="linear", likelihood="gaussian", sigma=sigma, seed=seed), D)
    rng = np.random.default_rng(seed)
    W = rng.normal(0, scale, (D, d)) if W is None else W
    b = rng.normal(0, 0.3, D)
    layer = model.decoder.get_layer("dec_out")
    layer.kernel.assign(W.T.astype(np.float32))
    layer.bias.assign(b.astype(np.float32))
    return model, W.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)


def sample_linear(W, b, sigma, n, seed):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, W.shape[1]))
    return (z @ W.T + b + sigma * rng.standard_normal((n, W.shape[0]))).astype(np.float32)


def bimodal(n=4, D=8, sigma=0.3, slope=3.0, k=0.4, seed=0):
    """A 2-D latent whose likelihood depends on z1 through relu(z1) and k·relu(−z1): an image made at
    z1 = 1 is as well explained by z1 = −1/k, a mode the prior makes weaker (its mass ≈ 0.18 of the
    other's for k = 0.4). The decoder's hidden units are relu(±z1), relu(±z2); the encoder ignores x and
    puts q on the weak mode. Returns the model and n images made at z = (1, 0.5)."""
    model = VAE(Config(latent_dim=2, hidden=(4,), likelihood="gaussian", sigma=sigma, seed=seed), D)
    rng = np.random.default_rng(seed)
    c, e = rng.normal(size=D), rng.normal(size=D)
    c, e = slope * c / np.linalg.norm(c), 2 * e / np.linalg.norm(e)
    hidden, out = model.decoder.get_layer("dec_0"), model.decoder.get_layer("dec_out")
    hidden.kernel.assign(np.array([[1, -1, 0, 0], [0, 0, 1, -1]], np.float32))
    hidden.bias.assign(np.zeros(4, np.float32))
    out.kernel.assign(np.stack([c, k * c, e, -e]).astype(np.float32))
    out.bias.assign(np.zeros(D, np.float32))
    for layer in model.encoder.layers:
        layer.kernel.assign(np.zeros(layer.kernel.shape, np.float32))
    inv_softplus = lambda s: np.log(np.expm1(s))  # noqa: E731
    weak_width = sigma / (slope * k)
    model.encoder.get_layer("enc_out").bias.assign(
        np.array([-1 / k, 0.5, inv_softplus(weak_width), inv_softplus(sigma / 2)], np.float32))
    x = (c + 0.5 * e + sigma * np.random.default_rng(seed + 1).standard_normal((n, D))).astype(np.float32)
    return model, x


def fit_encoder(model, x, steps=300, batch=256, lr=1e-2):
    """Adam on the ELBO for the encoder only, so that q(z|x) approximates the true posterior."""
    opt, variables = keras.optimizers.Adam(lr), model.encoder.trainable_variables

    @tf.function
    def step(xb, seed):
        with tf.GradientTape() as tape:
            recon, kl = model.elbo_terms(xb, seed, 4)
            loss = -tf.reduce_mean(recon - kl)
        opt.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))

    rng = np.random.default_rng(1)
    for i in range(steps):
        step(tf.constant(x[rng.integers(0, len(x), batch)]), tf.constant([3, i], tf.int32))


@pytest.fixture(scope="module")
def linear():
    """D = 24 pixels, d = 3, σ = 0.5: a posterior ~5 nats from the prior, not diagonal. Encoder untrained."""
    return linear_gaussian()


# -- the schedule ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", A.SCHEDULES)
def test_schedules_rise_from_zero_to_one(kind):
    for T in (1, 2, 7, 500):
        beta = A.beta_schedule(T, kind)
        assert len(beta) == T + 1 and beta[0] == 0 and beta[-1] == 1 and np.all(np.diff(beta) > 0)
    with pytest.raises(ValueError):
        A.beta_schedule(10, "cosine")
    with pytest.raises(ValueError):
        A.beta_schedule(0)


# -- exact answers -----------------------------------------------------------------------------------------------
def test_ais_matches_closed_form(linear):
    """From the prior, 3000 temperatures × 128 chains: every image within 0.05 nats of log N(x; b, WWᵀ + σ²I),
    and the reported SE covers the error."""
    model, W, b = linear
    x = sample_linear(W, b, 0.5, 8, seed=2)
    exact = exact_log_px(model, x)
    r = A.ais(model, x, num_steps=3000, num_chains=128)
    err = r.log_px - exact
    print("errors", err.round(3), "stderr", r.stderr.round(3), "acceptance", r.acceptance.mean())
    assert np.all(np.abs(err) < 0.05)
    assert np.all(np.abs(err) < 4 * r.stderr + 0.01)
    assert np.all(np.abs(r.acceptance - 0.65) < 0.1)
    # each chain's log w is a lower bound on average: their mean lies below log p(x)
    assert np.mean(r.log_weights.mean(0) - exact) < 0


def test_ais_from_q_also_converges():
    """start="posterior" (p0 = q(z|x) of an encoder fitted to the model) reaches log p(x) in fewer temperatures:
    q is close to p(z|x), so there is less of the way to anneal."""
    model, W, b = linear_gaussian(seed=1)
    fit_encoder(model, sample_linear(W, b, 0.5, 4096, seed=1))
    x = sample_linear(W, b, 0.5, 8, seed=3)
    exact = exact_log_px(model, x)
    r = A.ais(model, x, num_steps=300, num_chains=64, start="posterior")
    prior = A.ais(model, x, num_steps=300, num_chains=64)
    print("from q", (r.log_px - exact).round(3), r.stderr.round(3), "from the prior", prior.stderr.round(3))
    assert np.all(np.abs(r.log_px - exact) < 0.05)
    assert np.mean(r.stderr) < np.mean(prior.stderr) / 2


def test_ais_from_prior_finds_the_mode_q_misses():
    """A bimodal posterior with q on its weaker mode: IS with q is more than a nat low, AIS from the prior is
    within 0.1 nats of the grid integral for every image (and AIS from q is as lost as IS)."""
    model, x = bimodal()
    grid = grid_log_px(model, x)
    iw = estimate_log_px(model, x, k=2000).log_px
    r = A.ais(model, x, num_steps=100, num_chains=2048)
    from_q = A.ais(model, x, num_steps=100, num_chains=64, start="posterior")
    print("IS error", (iw - grid).round(2), "AIS error", (r.log_px - grid).round(3), "stderr", r.stderr.round(3))
    assert np.all(iw - grid < -1.0)
    assert np.all(np.abs(r.log_px - grid) < 0.1)
    assert np.all(from_q.log_px - grid < -0.5)


def test_bdmc_sandwiches_the_closed_form_and_narrows(linear):
    """On data simulated from the model: forward AIS ≤ log p(x) ≤ reverse AIS on average (within 3 MC errors),
    and the sandwich narrows as the number of temperatures grows."""
    model = linear[0]
    sweep = A.bdmc_sweep(model, n=16, steps=(10, 100, 1000), num_chains=16, seed=4)
    exact = exact_log_px(model, sweep[0].x)
    widths = []
    for r in sweep:
        s = r.summary()
        print(s, "exact", exact.mean())
        assert s["lower_mean"] <= exact.mean() + 3 * s["lower_mc_stderr"]
        assert s["upper_mean"] >= exact.mean() - 3 * s["upper_mc_stderr"]
        widths.append(s["width_mean"])
    assert widths[0] > widths[1] > widths[2] and widths[0] > 1 and abs(widths[2]) < 0.1
    # the reverse runs follow the forward runs' steps backwards (no pilots: the step never sees z)
    np.testing.assert_allclose(sweep[1].upper.step_sizes, sweep[1].lower.step_sizes[::-1], rtol=1e-6)
    assert sweep[1].upper.grad_evals == 16 * 16 * (1 + 99 * 10)  # one at z_0, then 10 leapfrog steps a move
    np.testing.assert_array_equal(sweep[0].x, sweep[2].x)  # the same images at every num_steps


def test_simulate_draws_from_the_model(linear):
    """x ~ p(x|z) around Wz + b with σ's spread, z ~ N(0, I); Bernoulli decoders give 0/1 pixels."""
    model, W, b = linear
    x, z = A.simulate(model, 2000, seed=1)
    resid = x - (z @ W.T + b)
    assert abs(resid.std() - 0.5) < 0.01 and abs(z.std() - 1) < 0.03
    mlp = VAE(Config(latent_dim=2, hidden=(8,)), 10)
    xb, _ = A.simulate(mlp, 50)
    assert set(np.unique(xb)) <= {0.0, 1.0}


# -- bookkeeping -------------------------------------------------------------------------------------------------
SMALL = dict(num_steps=41, num_chains=4, num_leapfrog=3, steps_per_call=10, images_per_batch=2)  # one compile


def test_deterministic_for_a_seed_and_fields(linear):
    model, W, b = linear
    x = sample_linear(W, b, 0.5, 4, seed=5)
    r1, r2, r3 = A.ais(model, x, **SMALL), A.ais(model, x, **SMALL), A.ais(model, x, **{**SMALL, "seed": 1})
    np.testing.assert_array_equal(r1.log_weights, r2.log_weights)
    assert not np.allclose(r1.log_weights, r3.log_weights)
    assert r1.log_weights.shape == (4, 4) and r1.log_px.shape == r1.stderr.shape == r1.ess.shape == (4,)
    assert r1.step_sizes.shape == (40, 4) and np.all(r1.step_sizes > 0)
    # 1 gradient at z_0, then 3 leapfrog steps for each of 40 moves; 4 + 2 pilot chains; 4 images
    assert r1.grad_evals == 4 * 6 * (1 + 40 * 3)
    assert r1.final_z.shape == (4, 4, 3)
    s = r1.summary()
    assert s["num_images"] == 4 and s["num_steps"] == 41 and not s["reverse"] and s["seconds"] > 0
    assert np.all((r1.ess >= 1) & (r1.ess <= 4 + 1e-9))


def test_new_image_counts_compile_few_shapes():
    """Each batch shape is traced and compiled once and kept for the life of the process: the bound page asks
    for any count from 2 to 100, and eight counts here need the five power-of-two shapes 1–16, no more."""
    model = VAE(Config(latent_dim=2, hidden=(8,)), 12)
    x = (np.random.default_rng(0).random((24, 12)) < 0.5).astype(np.float32)
    for n in (10, 20, 5, 16, 12, 24, 7, 3):
        assert A.ais(model, x[:n], num_steps=3, num_leapfrog=1).log_px.shape == (n,)
    (fn,) = model._ais_fns.values()
    assert fn.experimental_get_tracing_count() == 5


@pytest.mark.slow
def test_new_image_counts_keep_no_memory_once_their_shapes_are_compiled():
    """In a process of its own, with the default architecture: once 10, 20 and 5 images have compiled the shapes
    1–16, AIS on 16, 12, 24, 7 and 3 images leaves the resident memory (heap trimmed) within 40 MB of where it
    was. Batches of whatever size came kept about 20 MB per new count (+77 MB over these five)."""
    run_memory_script("""
from vae_tf import ais

model = VAE(Config(), 784)
x = (np.random.default_rng(0).random((24, 784)) < 0.3).astype(np.float32)
after = []
for n in (10, 20, 5, 16, 12, 24, 7, 3):
    assert ais.ais(model, x[:n], num_steps=20).log_px.shape == (n,)
    after.append(rss_mb())
print(after)
assert max(after[3:]) - after[2] < 40, after
""")


def test_progress_and_should_stop(linear):
    model, W, b = linear
    x = sample_linear(W, b, 0.5, 4, seed=6)
    seen = []
    A.ais(model, x, progress=lambda done, total: seen.append((done, total)), **SMALL)
    assert seen[-1] == (4 * 40, 4 * 40) and all(a[0] < b[0] for a, b in zip(seen, seen[1:], strict=False))
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        A.ais(model, x, should_stop=stop, **SMALL)
    assert len(calls) == 3  # asked between calls, and it stopped at the first yes
    event = threading.Event()
    event.set()
    with pytest.raises(Cancelled):
        A.ais(model, x, should_stop=event, **SMALL)


def test_bad_arguments(linear):
    model, W, b = linear
    x = sample_linear(W, b, 0.5, 2, seed=7)
    with pytest.raises(ValueError, match="z_start"):
        A.ais(model, x, reverse=True)
    with pytest.raises(ValueError, match="start"):
        A.ais(model, x, start="data")
    with pytest.raises(ValueError, match="schedule"):
        A.ais(model, x, schedule=np.array([0.0, 0.7, 0.5, 1.0]))
    with pytest.raises(ValueError, match="step_sizes"):
        A.ais(model, x, num_steps=10, step_sizes=np.ones((10, 2)))

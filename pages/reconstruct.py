"""Reconstructions: test images beside what the decoder makes of their codes, and samples from the prior."""
import streamlit as st

from ui import common, model_ops
from vae_tf import latent, plots

st.title("Reconstructions")
active = common.active_run()  # the first time, this also loads TensorFlow (under a spinner)
from vae_tf import estimators  # noqa: E402  (after the title: it imports TensorFlow)

st.markdown(f"Run **{active.name}**: each test image x is encoded to q(z|x); the decoder turns a code z back "
            "into an image, its mean E[x|z]. Under each reconstruction is the image's ELBO and its KL term.")

P = "page.rec."
classes = common.class_options(active)
c1, c2, c3 = st.columns(3, gap="medium")
with c1:
    mode = st.radio("Which images", ["random", "by class"], key=P + "mode", horizontal=True,
                    bind="query-params", persist_state="session")
    if mode == "random" or not classes:
        n = st.slider("How many", 4, 48, 16, step=4, key=P + "n", bind="query-params", persist_state="session")
    else:
        picked = st.multiselect("Classes", classes, default=classes[:4], format_func=active.dataset.label_name,
                                key=P + "classes", bind="query-params", persist_state="session")
        per_class = st.slider("Images per class", 1, 12, 4, key=P + "per_class",
                              bind="query-params", persist_state="session")
with c2:
    seed = st.number_input("Seed", 0, 2**31 - 1, 0, key=P + "seed", bind="query-params", persist_state="session",
                           help="Picks the images, and the sample z ~ q(z|x) when reconstructing from a sample.")
    source = st.radio("Decode", ["the posterior mean", "a sample z ~ q(z|x)"], key=P + "source",
                      bind="query-params", persist_state="session",
                      help="The mean of q(z|x) gives the typical reconstruction; a sample shows how much the "
                           "code is uncertain about: where q is wide, samples decode to visibly different images.")
with c3:
    n_prior = st.slider("Samples from the prior", 4, 48, 16, step=4, key=P + "n_prior",
                        bind="query-params", persist_state="session")
    prior_seed = st.number_input("Prior seed", 0, 2**31 - 1, 0, key=P + "prior_seed",
                                 bind="query-params", persist_state="session")

if mode == "random" or not classes:
    idx = latent.pick_random(len(active.x), n, seed)
else:
    idx = latent.pick_by_class(active.y, picked, per_class, seed)
if len(idx) == 0:
    st.info("Pick at least one class.")
    st.stop()

x = active.x[idx]
sample = source.startswith("a sample")
recon = model_ops.reconstruct(active.model, x, sample=sample, seed=seed)
terms = estimators.elbo(active.model, x, num_samples=16, seed=seed)

m1, m2, m3 = st.columns(3)
m1.metric("mean ELBO of these images", f"{terms.elbo.mean():.1f} nats")
m2.metric("reconstruction E_q[log p(x|z)]", f"{terms.recon.mean():.1f} nats")
m3.metric("KL(q(z|x) ‖ p(z))", f"{terms.kl.mean():.1f} nats")

top = [f"#{i}<br>{active.label(i)}" for i in idx]
bottom = [f"ELBO {e:.1f}<br>KL {k:.1f}" for e, k in zip(terms.elbo, terms.kl)]
st.subheader("Test images (upper row) and their reconstructions (lower row)")
binarized = (" This run's Bernoulli likelihood sees binarized images (each pixel is 1 with probability its grey "
             "level), so the test images are shown as the model sees them." if active.run.config.likelihood == "bernoulli"
             else " With a Gaussian likelihood, log p(x|z) is a log-density of grey levels, so an ELBO can be positive.")
common.chart(plots.reconstruction_grid(active.images(x), active.images(recon), top, bottom, ncols=8), toolbar=False,
             caption=
             f"Each upper image is a test image (index and class); under it, the decoder's mean at "
             f"{'a sample of' if sample else 'the mean of'} q(z|x). The ELBO (16-sample estimate, nats) scores how "
             "well the model explains the image: the reconstruction term minus KL(q(z|x) ‖ p(z)), the nats the "
             "code spends on this image. Blurry reconstructions are the decoder's mean, not a sample of pixels." + binarized)

st.subheader("Samples from the prior")
z_images = model_ops.sample_prior(active.model, n_prior, prior_seed)
common.chart(plots.image_grid(active.images(z_images), ncols=8), toolbar=False, caption=
             "z ~ p(z) = N(0, I), decoded to E[x|z]. Where the prior has mass the decoder never learned to use "
             "(the 'holes' between the codes of training images), samples look less like clothes than "
             "reconstructions do.")

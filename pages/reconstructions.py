"""Reconstructions: test images beside what the decoder makes of their codes, and samples from the prior."""
import streamlit as st

from ui import active, cache, links, widgets
from vae_tf import data, plots

P = "page.rec."
BINARIZED = (" This run's Bernoulli likelihood sees binarized images (each pixel is 1 with probability its grey "
             "level), so the test images are shown as the model sees them.")
GAUSSIAN = " With a Gaussian likelihood, log p(x|z) is a log-density of grey levels, so an ELBO can be positive."
PRIOR = ("z ~ p(z) = N(0, I), decoded to E[x|z]. Where the prior has mass the decoder never learned to use (the "
         "'holes' between the codes of training images), samples look less like clothes than reconstructions do.")


def choices(run, classes):
    """The widgets: which images, which code to decode, how many prior samples. Returns the picked indices."""
    c1, c2, c3 = st.columns(3, gap="medium")
    with c1:
        mode = st.radio("Which images", ["random", "by class"], key=P + "mode", horizontal=True,
                        bind="query-params", persist_state="session")
        if mode == "random" or not classes:
            n = st.slider("How many", 4, 48, 16, step=4, key=P + "n", bind="query-params", persist_state="session")
        else:
            picked = st.multiselect("Classes", classes, default=classes[:4], format_func=run.dataset.label_name,
                                    key=P + "classes", bind="query-params", persist_state="session")
            per_class = st.slider("Images per class", 1, 12, 4, key=P + "per_class",
                                  bind="query-params", persist_state="session")
    with c2:
        seed = st.number_input("Seed", 0, 2**31 - 1, 0, key=P + "seed", bind="query-params", persist_state="session",
                               help="Picks the images, and the sample z ~ q(z|x) when reconstructing from a sample.")
        st.radio("Decode", ["the posterior mean", "a sample z ~ q(z|x)"], key=P + "source",
                 bind="query-params", persist_state="session",
                 help="The mean of q(z|x) gives the typical reconstruction; a sample shows how much the code is "
                      "uncertain about: where q is wide, samples decode to visibly different images.")
    with c3:
        st.slider("Samples from the prior", 4, 48, 16, step=4, key=P + "n_prior", bind="query-params",
                  persist_state="session")
        st.number_input("Prior seed", 0, 2**31 - 1, 0, key=P + "prior_seed", bind="query-params",
                        persist_state="session")
    if mode == "random" or not classes:
        return data.pick_random(len(run.x), n, seed), seed
    return data.pick_by_class(run.y, picked, per_class, seed), seed


def reconstructions_page():
    st.title("Reconstructions")
    run = active.active_run()  # the first time, this also loads TensorFlow (under a spinner)
    st.markdown(f"Run **{run.name}**: each test image x is encoded to q(z|x); the decoder turns a code z back "
                "into an image, its mean E[x|z]. Under each reconstruction is the image's ELBO and its KL term.")
    idx, seed = choices(run, run.classes())
    if len(idx) == 0:
        st.info("Pick at least one class.")
        st.stop()
    x = run.x[idx]
    sample = st.session_state[P + "source"].startswith("a sample")
    recon, terms = cache.reconstructions(run.key, tuple(int(i) for i in idx), sample, int(seed), run.model, run.x)
    m1, m2, m3 = st.columns(3)
    m1.metric("mean ELBO of these images", f"{terms.elbo.mean():.1f} nats")
    m2.metric("reconstruction E_q[log p(x|z)]", f"{terms.recon.mean():.1f} nats")
    m3.metric("KL(q(z|x) ‖ p(z))", f"{terms.kl.mean():.1f} nats")
    top = [f"#{i}<br>{run.label(i)}" for i in idx]
    bottom = [f"ELBO {e:.1f}<br>KL {k:.1f}" for e, k in zip(terms.elbo, terms.kl)]
    st.subheader("Test images (upper row) and their reconstructions (lower row)")
    widgets.chart(plots.reconstruction_grid(run.images(x), run.images(recon), top, bottom, ncols=8), toolbar=False,
                  caption=f"Each upper image is a test image (index and class); under it, the decoder's mean at "
                          f"{'a sample of' if sample else 'the mean of'} q(z|x). The ELBO (16-sample estimate, nats) "
                          "scores how well the model explains the image: the reconstruction term minus "
                          "KL(q(z|x) ‖ p(z)), the nats the code spends on this image. Blurry reconstructions are "
                          "the decoder's mean, not a sample of pixels."
                          + (BINARIZED if run.run.config.likelihood == "bernoulli" else GAUSSIAN))
    st.subheader("Samples from the prior")
    z_images = cache.prior_samples(run.key, int(st.session_state[P + "n_prior"]),
                                   int(st.session_state[P + "prior_seed"]), run.model)
    widgets.chart(plots.image_grid(run.images(z_images), ncols=8), toolbar=False, caption=PRIOR)


links.run_page(reconstructions_page)

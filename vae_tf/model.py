"""The VAE: encoder q(z|x), prior p(z), decoder p(x|z), and the ELBO.

    ELBO(x) = E_q(z|x)[log p(x|z)] − KL(q(z|x) ‖ p(z)) ≤ log p(x)

Every density is a `tfp.distributions` object; the networks are Keras 3 layers. The
module-level helpers at the end are numpy in, numpy out, for pages and scripts.
"""
from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from . import networks
from .config import Config

tfd = tfp.distributions

SCALE_FLOOR = 1e-4  # q's std never reaches 0, so log q(z|x) stays finite
SIGMA_FLOOR = 1e-3  # same for a learned decoder σ


class BernoulliLogits(tfd.Bernoulli):
    """tfd.Bernoulli with its log-density in one pass over the logits s:

        log p(x | s) = x·log σ(s) + (1 − x)·log(1 − σ(s)) = x·s − softplus(s)

    (log σ(s) = −softplus(−s), log(1 − σ(s)) = −softplus(s), and softplus(s) − softplus(−s) = s). TFP
    computes both softplus terms and masks each with multiply_no_nan, twice the elementwise work per
    pixel; the decoder's 784 pixels × every sample make that a large share of a training step and of
    importance sampling (benchmarks: the training and IS rows). Same density for finite logits, which a
    network gives (TFP's form also handles s = ±∞)."""

    def _log_prob(self, event):
        s = tf.convert_to_tensor(self._logits)
        return tf.cast(event, s.dtype) * s - tf.math.softplus(s)


class VAE:
    """Encoder (MLP or conv) → N(μ, diag(s²)); prior N(0, I); MLP, affine or conv decoder → Bernoulli or
    Gaussian. image_shape (H, W) is needed by conv networks only (a square one is inferred from num_pixels)."""

    def __init__(self, config: Config, num_pixels: int, image_shape: tuple[int, int] | None = None):
        self.config, self.num_pixels = config, int(num_pixels)
        self.image_shape = networks.resolve_image_shape(config, self.num_pixels, image_shape)
        self.encoder = networks.build_encoder(config, self.num_pixels, self.image_shape)
        self.decoder = networks.build_decoder(config, self.num_pixels, self.image_shape)
        self.raw_sigma = None
        if config.learned_sigma:  # one σ for every pixel, starting at 1
            self.raw_sigma = keras.Variable(_inverse_softplus(1.0 - SIGMA_FLOOR), name="raw_sigma", dtype="float32")

    # -- the three distributions ------------------------------------------------
    def posterior(self, x) -> tfd.MultivariateNormalDiag:
        """q(z|x) = N(μ(x), diag s(x)²), s = softplus(·) + floor: positive, and no exp to overflow."""
        h = self.encoder(x)
        mu, raw = tf.split(h, 2, axis=-1)
        return tfd.MultivariateNormalDiag(loc=mu, scale_diag=tf.nn.softplus(raw) + SCALE_FLOOR)

    def prior(self) -> tfd.MultivariateNormalDiag:
        d = self.config.latent_dim
        return tfd.MultivariateNormalDiag(loc=tf.zeros(d), scale_diag=tf.ones(d))

    def likelihood(self, z) -> tfd.Independent:
        """p(x|z) over all pixels. z may carry leading sample dimensions."""
        z = tf.convert_to_tensor(z, tf.float32)
        lead = tf.shape(z)[:-1]
        out = self.decoder(tf.reshape(z, [-1, self.config.latent_dim]))
        out = tf.reshape(out, tf.concat([lead, [self.num_pixels]], 0))
        if self.config.likelihood == "bernoulli":
            return tfd.Independent(BernoulliLogits(logits=out, dtype=tf.float32), reinterpreted_batch_ndims=1)
        return tfd.Independent(tfd.Normal(loc=out, scale=self.sigma), reinterpreted_batch_ndims=1)

    @property
    def sigma(self):
        """The Gaussian decoder's σ (fixed, or softplus of a trained scalar + floor)."""
        if self.raw_sigma is not None:
            return tf.nn.softplus(self.raw_sigma) + SIGMA_FLOOR
        return tf.constant(float(self.config.sigma), tf.float32)

    # -- what the pages and estimators need ---------------------------------------
    def elbo_terms(self, x, seed, num_samples: int = 1, analytic_kl: bool = True):
        """Per image: (E_q[log p(x|z)] from S samples, KL(q ‖ p(z))), each shape (N,).

        The analytic KL of two diagonal Gaussians is ½ Σ_j (μ_j² + s_j² − log s_j² − 1);
        `tfd.kl_divergence` computes exactly that. With analytic_kl=False it is the
        S-sample Monte-Carlo average of log q(z|x) − log p(z) instead.
        """
        eps = tf.random.stateless_normal(tf.stack([num_samples, tf.shape(x)[0], self.config.latent_dim]), seed)
        return self.elbo_terms_from_noise(x, eps, analytic_kl)

    def elbo_terms_from_noise(self, x, eps, analytic_kl: bool = True):
        """elbo_terms with the standard-normal draws eps (S, N, d) given: z = μ + s ⊙ ε (reparameterized,
        so gradients flow through z). Training passes its own draws so that every code path, XLA or
        not, sees the same numbers for the same seed."""
        q = self.posterior(x)
        z = q.bijector.forward(eps)  # (S, N, d): q's own affine map of N(0, I) noise
        recon = tf.reduce_mean(self.likelihood(z).log_prob(x), axis=0)
        if analytic_kl:
            kl = tfd.kl_divergence(q, self.prior())
        else:
            kl = tf.reduce_mean(q.log_prob(z) - self.prior().log_prob(z), axis=0)
        return recon, kl

    def log_weights(self, x, z, q=None):
        """log w = log p(x|z) + log p(z) − log q(z|x) for z of shape (K, N, d): shape (K, N)."""
        q = self.posterior(x) if q is None else q
        return self.likelihood(z).log_prob(x) + self.prior().log_prob(z) - q.log_prob(z)

    def reconstruct(self, x, sample: bool = False, seed=None):
        """Decoder mean at the posterior mean (or at one sample z ~ q(z|x))."""
        q = self.posterior(x)
        z = q.sample(seed=seed) if sample else q.mean()
        return self.mean_image(z)

    def mean_image(self, z):
        """E[x|z]: sigmoid of the logits (Bernoulli) or f(z) (Gaussian), clipped to [0, 1] for display."""
        return tf.clip_by_value(self.likelihood(z).mean(), 0.0, 1.0)

    def sample_prior(self, n: int, seed):
        return self.mean_image(self.prior().sample(n, seed=seed))

    def encode_mean(self, x):
        return self.posterior(x).mean()

    # -- weights -----------------------------------------------------------------
    @property
    def trainable_variables(self):
        extra = [self.raw_sigma] if self.raw_sigma is not None else []
        return self.encoder.trainable_variables + self.decoder.trainable_variables + extra

    def named_variables(self) -> dict:
        """Each variable under a name built from the network and layer names ("encoder/enc_0/kernel"),
        not from Keras's variable path, which depends on the name scope of the thread that built it."""
        out = {f"{net.name}/{layer.name}/{v.name}": v
               for net in (self.encoder, self.decoder) for layer in net.layers for v in layer.trainable_variables}
        if self.raw_sigma is not None:
            out["raw_sigma"] = self.raw_sigma
        return out

    def named_weights(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(v.numpy()) for name, v in self.named_variables().items()}

    def assign_weights(self, arrays: dict[str, np.ndarray], source: str = "weights"):
        """Load arrays by name, checking that names and shapes match this model exactly."""
        wanted = self.named_variables()
        missing, extra = set(wanted) - set(arrays), set(arrays) - set(wanted)
        if missing or extra:
            raise ValueError(f"{source} does not fit this model: missing {sorted(missing)}, unexpected {sorted(extra)}")
        for name, v in wanted.items():
            if tuple(arrays[name].shape) != tuple(v.shape):
                raise ValueError(f"{source}: {name} has shape {arrays[name].shape}, the model needs {tuple(v.shape)}")
            v.assign(arrays[name].astype(np.float32))

    def linear_decoder(self):
        """(W, b) with x = W z + b for the affine decoder: W is (D, d)."""
        if self.config.decoder != "linear":
            raise ValueError("only a linear decoder is an affine map x = Wz + b")
        layer = self.decoder.get_layer("dec_out")
        return tf.transpose(layer.kernel), tf.convert_to_tensor(layer.bias)

    def num_parameters(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.trainable_variables))


def _inverse_softplus(y: float) -> float:
    return math.log(math.expm1(y))


# -- numpy in, numpy out: eager one-off calls (the compiled functions live in estimators) -----------
def tf_seed(seed: int, stream: int = 0) -> np.ndarray:
    """A stateless TFP seed: an int32 pair (a plain int would select the stateful samplers)."""
    return np.array([int(seed) % 2**31, stream], np.int32)


def reconstruct(model: VAE, x, sample: bool = False, seed: int = 0) -> np.ndarray:
    return np.asarray(model.reconstruct(np.asarray(x, np.float32), sample=sample, seed=tf_seed(seed, 1)))


def sample_prior(model: VAE, n: int, seed: int) -> np.ndarray:
    return np.asarray(model.sample_prior(int(n), seed=tf_seed(seed, 2)))


def encode_mean(model: VAE, x, batch: int = 2000) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return np.concatenate([np.asarray(model.encode_mean(x[i:i + batch])) for i in range(0, len(x), batch)])


def decode_mean(model: VAE, z) -> np.ndarray:
    return np.asarray(model.mean_image(np.asarray(z, np.float32)))


def sample_posterior(model: VAE, x_single, n: int, seed: int) -> np.ndarray:
    """(n, d): draws z ~ q(z|x) for one image."""
    q = model.posterior(np.asarray(x_single, np.float32)[None])
    return np.asarray(q.sample(n, seed=tf_seed(seed, 3)))[:, 0, :]

"""Every hyperparameter a user can set, in one frozen dataclass.

`Config` is validated once, in `__post_init__`, so a `Config` that exists is a
valid one. `FIELDS` holds each field's range and help text: the CLI flags and
the app's sidebar are both generated from it, so the three never disagree.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import numbers
from dataclasses import dataclass
from typing import Any

CONFIG_VERSION = 1  # bump when a saved config can no longer be read as-is
DATASETS = ("fashion_mnist", "mnist")  # or a path to a user's .npz
ENCODERS = ("mlp", "conv")
DECODERS = ("mlp", "linear", "conv")
LIKELIHOODS = ("bernoulli", "gaussian")
OBJECTIVES = ("elbo", "iwae")


class ConfigError(ValueError):
    """A hyperparameter outside its allowed range; the message names the field."""


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: str  # "int", "float", "choice", "hidden", "sigma", "str", "optional_int"
    help: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    log: bool = False  # a slider on a log scale (learning rate)


FIELDS: dict[str, FieldSpec] = {f.name: f for f in [
    FieldSpec("dataset", "str", "Training data: fashion_mnist (bundled, offline), mnist (downloaded by Keras), "
              "or a path to a .npz with x_train/x_test."),
    FieldSpec("latent_dim", "int", "Size of the latent code z. 2 lets the app draw the true posterior on a grid.",
              1, 256),
    FieldSpec("hidden", "hidden", "Widths of the hidden Dense layers of the encoder (after its convolutions, for a "
              "conv encoder); the decoder mirrors them, e.g. 512,512.", 1, 4096),
    FieldSpec("encoder", "choice", "mlp: Dense layers on the flat pixels. conv: two stride-2 3×3 convolutions "
              "(conv_filters, then twice as many), then the hidden Dense layers; images need sides of 8 pixels "
              "or more.", choices=ENCODERS),
    FieldSpec("decoder", "choice", "mlp: a mirrored MLP. linear: one affine map x = Wz + b, whose log p(x) with a "
              "Gaussian likelihood has a closed form. conv: the hidden Dense layers, then two stride-2 3×3 "
              "transposed convolutions mirroring the conv encoder.", choices=DECODERS),
    FieldSpec("conv_filters", "int", "Filters of the first 3×3 convolution of a conv encoder or decoder; the second "
              "has twice as many (32 gives the 32, 64 of the Keras VAE example).", 1, 256),
    FieldSpec("likelihood", "choice", "p(x|z): bernoulli on binarized pixels, or gaussian N(f(z), σ²) on grey levels "
              "in [0, 1].", choices=LIKELIHOODS),
    FieldSpec("sigma", "sigma", "σ of the Gaussian likelihood, or 'learned' (one σ for all pixels, trained with the "
              "rest). The error term is ‖x − f(z)‖²/(2σ²).", 0.01, 10.0),
    FieldSpec("learning_rate", "float", "Adam's step size.", 1e-6, 1.0, log=True),
    FieldSpec("batch_size", "int", "Images per gradient step.", 1, 4096),
    FieldSpec("epochs", "int", "Passes over the training images.", 1, 500),
    FieldSpec("beta", "float", "Weight of the KL term: loss = −E_q[log p(x|z)] + β·KL(q(z|x) ‖ p(z)). "
              "β = 1 is the ELBO.", 0.0, 100.0),
    FieldSpec("kl_warmup_epochs", "int", "Epochs over which the KL weight rises linearly from 0 to β "
              "(0 = no warm-up).", 0, 500),
    FieldSpec("mc_samples", "int", "Samples z ~ q(z|x) per image per step (the k of the IWAE objective).", 1, 64),
    FieldSpec("objective", "choice", "elbo: the VAE bound. iwae: the k-sample importance-weighted bound of Burda "
              "et al., tighter for k > 1.", choices=OBJECTIVES),
    FieldSpec("seed", "int", "Seeds initialisation, shuffling, binarization and sampling: the same seed gives the "
              "same run.", 0, 2**31 - 1),
    FieldSpec("max_train_images", "optional_int", "Train on at most this many images (blank = all).", 1, 10_000_000),
]}


@dataclass(frozen=True)
class Config:
    dataset: str = "fashion_mnist"
    latent_dim: int = 20
    hidden: tuple[int, ...] = (512, 256)
    encoder: str = "mlp"
    decoder: str = "mlp"
    conv_filters: int = 32
    likelihood: str = "bernoulli"
    sigma: float | str = 0.1
    learning_rate: float = 1e-3
    batch_size: int = 128
    epochs: int = 5
    beta: float = 1.0
    kl_warmup_epochs: int = 0
    mc_samples: int = 1
    objective: str = "elbo"
    seed: int = 0
    max_train_images: int | None = None

    def __post_init__(self):
        # Normalise first (JSON gives lists, widgets give floats), then check.
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen)
        set_("hidden", _parse_hidden(self.hidden))
        set_("sigma", _parse_sigma(self.sigma))
        for name in ("latent_dim", "batch_size", "epochs", "kl_warmup_epochs", "mc_samples", "seed", "conv_filters"):
            set_(name, _as_int(name, getattr(self, name)))
        if self.max_train_images is not None:
            set_("max_train_images", _as_int("max_train_images", self.max_train_images))
        for name in ("learning_rate", "beta"):
            set_(name, _as_float(name, getattr(self, name)))
        self._validate()

    def _validate(self):
        for spec in FIELDS.values():
            value = getattr(self, spec.name)
            if spec.kind == "choice" and value not in spec.choices:
                raise ConfigError(f"{spec.name} must be one of {', '.join(spec.choices)}; got {value!r}")
            if spec.kind in ("int", "float", "optional_int") and value is not None:
                _check_range(spec, value)
        for width in self.hidden:
            _check_range(FIELDS["hidden"], width, label="each hidden width")
        if not 1 <= len(self.hidden) <= 4:
            raise ConfigError(f"hidden must list 1 to 4 layer widths; got {len(self.hidden)}")
        if self.sigma != "learned":
            _check_range(FIELDS["sigma"], self.sigma)
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ConfigError("dataset must be fashion_mnist, mnist or a path to a .npz file")
        if self.dataset not in DATASETS and not self.dataset.endswith(".npz"):
            raise ConfigError(f"dataset must be one of {', '.join(DATASETS)} or a path ending in .npz; "
                              f"got {self.dataset!r}")
        if self.kl_warmup_epochs > self.epochs:
            raise ConfigError(f"kl_warmup_epochs must be between 0 and epochs ({self.epochs}); "
                              f"got {self.kl_warmup_epochs}")
        if self.objective == "iwae" and self.beta != 1.0:
            raise ConfigError("beta must be 1 with the iwae objective (the bound has no separate KL term to weight)")
        if self.objective == "iwae" and self.kl_warmup_epochs > 0:
            raise ConfigError("kl_warmup_epochs must be 0 with the iwae objective: its bound L_k has no separate KL "
                              "term to ramp up, so a warm-up would be silently ignored")

    # -- derived --------------------------------------------------------------
    @property
    def learned_sigma(self) -> bool:
        return self.likelihood == "gaussian" and self.sigma == "learned"

    @property
    def objective_name(self) -> str:
        """The bound the training steps maximise, as curves name it: "ELBO", or "L_k" for the IWAE objective."""
        return f"L_{self.mc_samples}" if self.objective == "iwae" else "ELBO"

    def kl_weight(self, epoch: float) -> float:
        """β, ramped linearly from 0 over the warm-up epochs (epoch counts from 0)."""
        if self.kl_warmup_epochs == 0:
            return self.beta
        return self.beta * min(1.0, epoch / self.kl_warmup_epochs)

    def replace(self, **changes) -> Config:
        return dataclasses.replace(self, **changes)

    # -- JSON -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    def to_json(self) -> str:
        return json.dumps({"config_version": CONFIG_VERSION, **self.to_dict()}, indent=2)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        d = dict(d)
        version = d.pop("config_version", CONFIG_VERSION)
        if version != CONFIG_VERSION:
            raise ConfigError(f"config_version {version} is not supported "
                              f"(this VAE Lab reads version {CONFIG_VERSION})")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown config field(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> Config:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"config is not valid JSON: {e}") from None
        if not isinstance(d, dict):
            raise ConfigError("config JSON must be an object")
        return cls.from_dict(d)


def _check_range(spec: FieldSpec, value, label: str | None = None):
    label = label or spec.name
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{label} must be a finite number; got {value}")
    if not spec.lo <= value <= spec.hi:
        raise ConfigError(f"{label} must be between {format_number(spec.lo)} and {format_number(spec.hi)}; "
                          f"got {format_number(value)}")


def format_number(x) -> str:
    """Whole numbers in full (a seed's bound is 2147483647, not 2.14748e+09), others in %g."""
    return str(int(x)) if isinstance(x, numbers.Integral) else f"{x:g}"


def _as_int(name, value) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a whole number; got {value!r}")
    if isinstance(value, numbers.Integral):  # numpy ints from widgets and arrays count too
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # not a whole number: refused below, by name
            value = int(value.strip())
    if not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number; got {value!r}")
    return value


def _as_float(name, value) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number; got {value!r}") from None
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number; got {value!r}")
    return out


def _parse_hidden(value) -> tuple[int, ...]:
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace(" ", ",").split(",") if p.strip()]
        try:
            value = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(f"hidden must be comma-separated whole numbers such as 512,256; got {value!r}") from None
    if isinstance(value, int):
        value = (value,)
    try:
        return tuple(_as_int("hidden", v) for v in value)
    except TypeError:
        raise ConfigError(f"hidden must be a list of layer widths; got {value!r}") from None


def _parse_sigma(value) -> float | str:
    if isinstance(value, str):
        if value.strip().lower() == "learned":
            return "learned"
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"sigma must be a number or 'learned'; got {value!r}") from None
    return _as_float("sigma", value)

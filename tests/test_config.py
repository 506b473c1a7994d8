"""Config: ranges, coercion, consistency, JSON and immutability."""
import dataclasses
import json
import math

import numpy as np
import pytest

from vae_tf.config import CONFIG_VERSION, FIELDS, Config, ConfigError, format_number

RANGED = [name for name, spec in FIELDS.items() if spec.lo is not None]


def with_field(name, value) -> Config:
    """A config with one field set, plus whatever other field that value needs to be consistent."""
    if name == "hidden":
        return Config(hidden=(value,))
    if name == "kl_warmup_epochs":
        return Config(epochs=500, kl_warmup_epochs=value)
    return Config(**{name: value})


def past(spec, side, far=False):
    """Just past (the next representable value) or far past one bound of a field."""
    bound = spec.lo if side == "lo" else spec.hi
    sign = -1 if side == "lo" else 1
    if spec.kind in ("int", "optional_int", "hidden"):
        return bound + sign * (10**9 if far else 1)
    if far:
        return bound + sign * 1e6 if side == "lo" else bound * 1e6
    return math.nextafter(bound, sign * math.inf)


def test_defaults_are_valid_and_documented():
    c = Config()
    assert (c.dataset, c.latent_dim, c.hidden, c.likelihood, c.objective) == \
        ("fashion_mnist", 20, (512, 256), "bernoulli", "elbo")
    assert set(FIELDS) == {f.name for f in dataclasses.fields(Config)}
    assert all(spec.help for spec in FIELDS.values())


@pytest.mark.parametrize("name", RANGED)
def test_bounds_accepted(name):
    spec = FIELDS[name]
    for bound in (spec.lo, spec.hi):
        value = int(bound) if spec.kind in ("int", "optional_int", "hidden") else bound
        c = with_field(name, value)
        assert (c.hidden[0] if name == "hidden" else getattr(c, name)) == value


@pytest.mark.parametrize("far", [False, True], ids=["just_past", "far_past"])
@pytest.mark.parametrize("side", ["lo", "hi"])
@pytest.mark.parametrize("name", RANGED)
def test_out_of_range_rejected_with_field_and_range(name, side, far):
    spec = FIELDS[name]
    value = past(spec, side, far)
    with pytest.raises(ConfigError) as e:
        with_field(name, value)
    msg = str(e.value)
    assert name in msg
    assert f"between {format_number(spec.lo)} and {format_number(spec.hi)}" in msg


def test_integer_bounds_are_printed_in_full():
    with pytest.raises(ConfigError, match=r"seed must be between 0 and 2147483647; got 2147483648"):
        Config(seed=2**31)
    with pytest.raises(ConfigError, match=r"max_train_images must be between 1 and 10000000; got 0"):
        Config(max_train_images=0)


@pytest.mark.parametrize("name", ["learning_rate", "beta", "sigma"])
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_numbers_rejected(name, bad):
    with pytest.raises(ConfigError, match=name):
        Config(**{name: bad})


@pytest.mark.parametrize("given, expected", [
    ("512,256", (512, 256)), ("64, 32 ,16", (64, 32, 16)), ("128 64", (128, 64)),
    ([300], (300,)), (7, (7,)), ((8.0, np.int64(4)), (8, 4)),
])
def test_hidden_coerced(given, expected):
    c = Config(hidden=given)
    assert c.hidden == expected and all(type(h) is int for h in c.hidden)


@pytest.mark.parametrize("given, expected", [("learned", "learned"), (" Learned ", "learned"), ("0.5", 0.5), (2, 2.0)])
def test_sigma_coerced(given, expected):
    assert Config(likelihood="gaussian", sigma=given).sigma == expected


def test_numbers_coerced_from_strings_floats_and_numpy():
    c = Config(latent_dim="8", batch_size=64.0, epochs=np.int32(3), seed=np.int64(5), learning_rate="0.01",
               beta=np.float32(0.5), max_train_images="1000")
    assert (c.latent_dim, c.batch_size, c.epochs, c.seed, c.max_train_images) == (8, 64, 3, 5, 1000)
    assert all(type(getattr(c, n)) is int for n in ("latent_dim", "batch_size", "epochs", "seed", "max_train_images"))
    assert c.learning_rate == 0.01 and type(c.learning_rate) is float and c.beta == 0.5


@pytest.mark.parametrize("kw, field", [
    (dict(latent_dim=2.5), "latent_dim"), (dict(latent_dim=True), "latent_dim"), (dict(epochs="many"), "epochs"),
    (dict(learning_rate="fast"), "learning_rate"), (dict(beta=None), "beta"),
    (dict(hidden="a,b"), "hidden"), (dict(hidden=()), "hidden"), (dict(hidden=(8, 8, 8, 8, 8)), "hidden"),
    (dict(hidden=None), "hidden"), (dict(sigma="tiny"), "sigma"),
    (dict(decoder="cnn"), "decoder"), (dict(likelihood="poisson"), "likelihood"), (dict(objective="vi"), "objective"),
    (dict(dataset=""), "dataset"), (dict(dataset="data.csv"), "dataset"),
])
def test_wrong_kinds_rejected_naming_the_field(kw, field):
    with pytest.raises(ConfigError, match=field):
        Config(**kw)


def test_choice_error_lists_the_choices():
    with pytest.raises(ConfigError, match="decoder must be one of mlp, linear, conv; got 'cnn'"):
        Config(decoder="cnn")


def test_npz_path_is_a_dataset():
    assert Config(dataset="/data/my images.npz").dataset == "/data/my images.npz"


def test_inconsistent_combinations_rejected():
    with pytest.raises(ConfigError, match=r"kl_warmup_epochs must be between 0 and epochs \(3\); got 4"):
        Config(epochs=3, kl_warmup_epochs=4)
    assert Config(epochs=3, kl_warmup_epochs=3).kl_warmup_epochs == 3
    with pytest.raises(ConfigError, match="beta must be 1 with the iwae objective"):
        Config(objective="iwae", beta=0.5)
    assert Config(objective="iwae", beta=1.0, mc_samples=5).objective == "iwae"
    # a KL warm-up has nothing to ramp in L_k: refused, not silently ignored
    with pytest.raises(ConfigError, match="kl_warmup_epochs must be 0 with the iwae objective"):
        Config(objective="iwae", mc_samples=5, epochs=5, kl_warmup_epochs=2)
    assert Config(objective="elbo", epochs=5, kl_warmup_epochs=2).kl_warmup_epochs == 2
    assert Config(objective="iwae", mc_samples=5).objective_name == "L_5" and Config().objective_name == "ELBO"


def test_kl_weight_ramps_linearly_to_beta():
    c = Config(epochs=10, kl_warmup_epochs=4, beta=2.0)
    assert [c.kl_weight(e) for e in range(6)] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.0]
    assert Config(beta=0.3).kl_weight(0) == 0.3


def test_json_round_trip_equal():
    c = Config(dataset="x.npz", latent_dim=2, hidden=(64, 32), decoder="linear", likelihood="gaussian",
               sigma="learned", learning_rate=3e-4, batch_size=17, epochs=9, beta=0.7, kl_warmup_epochs=2,
               mc_samples=3, seed=42, max_train_images=999)
    text = c.to_json()
    assert json.loads(text)["config_version"] == CONFIG_VERSION
    back = Config.from_json(text)
    assert back == c and hash(back) == hash(c) and back.to_dict() == c.to_dict()
    assert Config.from_dict(c.to_dict()) == c
    assert Config.from_json(Config().to_json()) == Config()


def test_json_refusals():
    d = json.loads(Config().to_json())
    with pytest.raises(ConfigError, match="unknown config field.*colour"):
        Config.from_dict({**d, "colour": "red"})
    with pytest.raises(ConfigError, match=f"config_version 2 is not supported.*version {CONFIG_VERSION}"):
        Config.from_dict({**d, "config_version": 2})
    with pytest.raises(ConfigError, match="not valid JSON"):
        Config.from_json("{latent_dim: 3")
    with pytest.raises(ConfigError, match="must be an object"):
        Config.from_json("[1, 2]")
    with pytest.raises(ConfigError, match="latent_dim"):
        Config.from_dict({**d, "latent_dim": 0})


def test_frozen_and_replace_revalidates():
    c = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.latent_dim = 3
    assert c.latent_dim == 20
    d = c.replace(latent_dim=3, hidden="32")
    assert (d.latent_dim, d.hidden, c.latent_dim) == (3, (32,), 20)
    with pytest.raises(ConfigError, match="latent_dim"):
        c.replace(latent_dim=0)


def test_learned_sigma_only_with_gaussian():
    assert Config(likelihood="gaussian", sigma="learned").learned_sigma
    assert not Config(likelihood="bernoulli", sigma="learned").learned_sigma
    assert not Config(likelihood="gaussian", sigma=0.2).learned_sigma

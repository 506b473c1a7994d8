"""The one sidebar, drawn by app.py on every page: the active run, and the next run's hyperparameters.

Because it is drawn on every page, its widgets never go stale and keep their values across page
switches. Each widget has an explicit key and gets its first value from session state (never
from a `value=` argument), so callbacks (defaults, copy a run, a finished upload, a finished
training) can set them before the widgets are drawn.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from vae_tf.config import DATASETS, FIELDS, Config, ConfigError, format_number
from vae_tf.runs import RUN_NAME_RE, CheckpointError, RunRef

from . import cache, catalog, server, session
from .escape import md

DEFAULTS = Config()
HP = "hp."  # widget key prefix of the hyperparameters
SIGMA_LEARNED = "hp.sigma_learned"

# Per-field widget details that FIELDS (the library's ranges) does not carry.
STEPS = {"batch_size": 16, "beta": 0.1, "learning_rate": 1e-4, "max_train_images": 1000, "sigma": 0.01}
FORMATS = {"learning_rate": "%.1e", "beta": "%.2f", "sigma": "%.3f"}
LABELS = {"latent_dim": "latent dimensions", "hidden": "hidden layers", "learning_rate": "learning rate",
          "batch_size": "batch size", "kl_warmup_epochs": "KL warm-up epochs", "mc_samples": "samples per image",
          "max_train_images": "max training images", "beta": "β (KL weight)", "sigma": "σ of the Gaussian"}


@dataclass
class Settings:
    """What the sidebar decided for this script run; pages read it with ui.active.settings()."""
    root: Path
    run_name: str | None
    run_stamp: int
    run_summary: dict | None
    run_error: str | None
    values: dict = field(default_factory=dict)  # next run's raw widget values, by config field
    config: Config | None = None
    config_error: str | None = None
    training: bool = False  # kept for callers: the widgets are never disabled (training runs in the background)

    @property
    def ref(self) -> RunRef | None:
        return RunRef(str(self.root), self.run_name, self.run_stamp) if self.run_name else None


def default_values() -> dict:
    d = DEFAULTS.to_dict()
    d["hidden"] = ",".join(map(str, DEFAULTS.hidden))
    return d


def _set_widgets_from(config_dict: dict):
    for name, value in config_dict.items():
        if name == "hidden":
            value = ",".join(map(str, value)) if not isinstance(value, str) else value
        if name == "sigma":
            st.session_state[SIGMA_LEARNED] = value == "learned"
            if value == "learned":
                continue
            value = float(value)
        st.session_state[HP + name] = _as_widget_value(name, value)


def _as_widget_value(name: str, value):
    """Numbers as the float widgets hold them (whole numbers too: see _widget)."""
    spec = FIELDS.get(name)
    numeric = spec is not None and spec.kind in ("int", "optional_int", "float")
    return float(value) if numeric and isinstance(value, (int, float)) and not isinstance(value, bool) else value


def reset_to_defaults():
    _set_widgets_from(default_values())


def copy_active_run():
    summary = _active_summary()
    if summary:
        _set_widgets_from(summary["config"])


def _active_summary():
    name = st.session_state.get(session.ACTIVE_RUN)
    try:
        return cache.run_summary(catalog.ref(name)) if name else None
    except CheckpointError:
        return None


def _init_state():
    values = default_values()
    for name in FIELDS:
        if name == "sigma":
            st.session_state.setdefault(SIGMA_LEARNED, values["sigma"] == "learned")
            st.session_state.setdefault(HP + "sigma", DEFAULTS.sigma if DEFAULTS.sigma != "learned" else 0.1)
        else:
            st.session_state.setdefault(HP + name, _as_widget_value(name, values[name]))
    st.session_state.setdefault(session.UPLOADS, {})


# -- the active run ---------------------------------------------------------------------------
def _run_picker(root: Path, disabled: bool):
    names, broken = catalog.loadable(root)
    others = st.sidebar.toggle("Show other visitors' runs", key=session.SHOW_OTHERS, value=False,
                               help="Runs trained here by other visitors are theirs: hidden unless you ask.")
    me = session.visitor()
    names = catalog.visible(names, me, others, root)
    mine = {n for n in names if catalog.owner(n, root) == me}
    if broken:  # a run that cannot load is not offered (a page would only say so): list them with the reason
        st.sidebar.caption("Not listed, as they cannot be loaded: "
                           + "; ".join(f"{md(n if RUN_NAME_RE.fullmatch(n) else repr(n))} ({md(why)})"
                                       for n, why in broken.items())
                           + ". The table of runs on the Train page lists them too.")
    if not names:
        st.sidebar.info("No runs on this server yet: train one on the Train page.")
        return None
    default = server.DEFAULT_RUN if server.DEFAULT_RUN in names else names[0]
    current = st.session_state.get(session.ACTIVE_RUN)
    if current not in names:  # first open, or the run was removed
        st.session_state[session.ACTIVE_RUN] = default
    # bound to the URL (?run.active=…), which leaves out the widget's default: that must be the same default
    return st.sidebar.selectbox("Active run", names, index=names.index(default), key=session.ACTIVE_RUN,
                                disabled=disabled, bind="query-params",
                                format_func=lambda n: f"{n} (yours)" if n in mine else n,
                                help="The trained model every page shows. Runs live in checkpoints/; "
                                     "a finished training becomes the active run.")


def _run_glance(summary: dict):
    cfg, meta, final = summary["config"], summary["meta"], summary["final"]
    c1, c2 = st.sidebar.columns(2)
    c1.metric("test ELBO", f"{final['test_elbo']:.1f}" if final.get("test_elbo") is not None else "—",
              help="Mean ELBO of the test images after the last finished epoch, nats/image (higher is better).")
    c2.metric("epochs", f"{round(meta.get('epochs_done', 0), 1):g}/{cfg['epochs']}",
              help=f"status: {meta.get('status', '?')}")
    sigma = cfg["sigma"] if cfg["likelihood"] == "gaussian" else None
    parts = [md(dataset_label(cfg["dataset"])), f"latent {cfg['latent_dim']}",
             f"hidden {','.join(map(str, cfg['hidden']))}", f"{cfg['decoder']} decoder",
             cfg["likelihood"] + (f" σ={sigma}" if sigma is not None else ""),
             f"{cfg['objective']}" + (f" k={cfg['mc_samples']}" if cfg["mc_samples"] > 1 else ""),
             f"β={cfg['beta']:g}", f"lr {cfg['learning_rate']:g}", f"batch {cfg['batch_size']}"]
    status = meta.get("status", "")
    st.sidebar.caption(" · ".join(parts) + (f" · **{status}**" if status and status != "complete" else ""))


def dataset_label(name: str, uploads: dict | None = None) -> str:
    """fashion_mnist, or "upload: <its file name as uploaded>" (uploads: {name: file name}, else this session's)."""
    if name in DATASETS:
        return name
    uploads = st.session_state.get(session.UPLOADS, {}) if uploads is None else uploads
    return f"upload: {uploads.get(name, Path(name).name)}"


# -- the next run's hyperparameters ---------------------------------------------------------------
def _widget(spec, disabled: bool):
    """One hyperparameter's widget, bound to the URL (?hp.latent_dim=2…). Each gets the library's default as
    its own default, so that a link leaves out exactly the settings that are at their defaults."""
    key, label = HP + spec.name, LABELS.get(spec.name, spec.name.replace("_", " "))
    default = default_values()[spec.name]
    allowed = f" Allowed: {format_number(spec.lo)} to {format_number(spec.hi)}." if spec.lo is not None else ""
    kw = dict(key=key, help=spec.help + allowed, disabled=disabled, bind="query-params")
    if spec.name == "dataset":
        options = list(DATASETS) + [p for p in st.session_state[session.UPLOADS] if p not in DATASETS]
        if st.session_state.get(key) not in options:
            options.append(st.session_state[key])
        uploads = dict(st.session_state[session.UPLOADS])  # the labels as of this run (format_func runs later too)
        return st.selectbox("data set", options, index=options.index(default),
                            format_func=lambda n: dataset_label(n, uploads), **kw)
    # No min/max on the numbers and whole numbers taken as typed (2.5 stays 2.5): a value out of range or not
    # whole reaches Config, which names it, and Train stays disabled until it is fixed. Nothing is clamped.
    if spec.kind == "int":
        return st.number_input(label, value=float(default), step=float(STEPS.get(spec.name, 1)), format="%g", **kw)
    if spec.kind == "optional_int":
        return st.number_input(label, step=float(STEPS.get(spec.name, 1)), format="%g",
                               value=None if default is None else float(default), placeholder="all", **kw)
    if spec.kind == "float":
        return st.number_input(label, value=float(default), step=STEPS.get(spec.name, 0.01),
                               format=FORMATS.get(spec.name, "%g"), **kw)
    if spec.kind == "choice":
        return st.radio(label, spec.choices, index=spec.choices.index(default), horizontal=True, **kw)
    if spec.kind == "hidden":
        return st.text_input(label, value=default, **kw)
    if spec.kind == "sigma":
        gaussian = st.session_state.get(HP + "likelihood") == "gaussian"
        learned = st.toggle("learn σ", value=default == "learned", key=SIGMA_LEARNED, bind="query-params",
                            disabled=disabled or not gaussian,
                            help="Train one σ for all pixels with the rest of the model (Gaussian likelihood only).")
        value = st.number_input(label, step=STEPS["sigma"],
                                value=float(default) if default != "learned" else 0.1, format=FORMATS["sigma"],
                                key=key, help=spec.help, bind="query-params",
                                disabled=disabled or not gaussian or learned)
        return "learned" if learned else value
    return st.text_input(label, **kw)


def values_from_state() -> dict:
    """The next run's config fields as the widgets hold them now (callbacks may read this too)."""
    values = {name: st.session_state.get(HP + name) for name in FIELDS}
    if st.session_state.get(SIGMA_LEARNED):
        values["sigma"] = "learned"
    return values


def config_from_state() -> tuple[Config | None, str | None]:
    try:
        return Config(**values_from_state()), None
    except ConfigError as e:
        return None, str(e)


def _hyperparameters(disabled: bool, expanded: bool) -> tuple[dict, Config | None, str | None]:
    with st.sidebar.expander("Hyperparameters for the next run", expanded=expanded, icon=":material/tune:"):
        for spec in FIELDS.values():
            _widget(spec, disabled)
        # one button a row: side by side, the sidebar cut "Copy active run" to "Copy acti…"
        st.button("Defaults", on_click=reset_to_defaults, disabled=disabled, key="hp.reset",
                  help="Put every hyperparameter back to the library's default.", width="stretch")
        st.button("Copy active run", on_click=copy_active_run, disabled=disabled, key="hp.copy",
                  help="Start from the active run's settings.", width="stretch")
    config, error = config_from_state()
    return values_from_state(), config, error


def render(page_url: str = "") -> Settings:
    """Draw the sidebar; store and return this run's Settings."""
    _init_state()
    root = server.checkpoints_root()
    training = False
    name = _run_picker(root, disabled=training)
    summary, error, stamp = None, None, 0
    if name:
        stamp = RunRef.of(name, root).stamp
        try:
            summary = cache.run_summary(RunRef(str(root), name, stamp))
            _run_glance(summary)
        except CheckpointError as e:
            error = str(e)
            st.sidebar.error(f"Run {name} cannot be read: {md(e)}")
    values, config, config_error = _hyperparameters(training, expanded=page_url in ("", "train"))
    if config_error:
        st.sidebar.error(f"Hyperparameters: {md(config_error)}", icon=":material/error:")
    settings = Settings(root, name, stamp, summary, error, values, config, config_error, training)
    st.session_state[session.SETTINGS] = settings
    return settings


"""The runs this server holds, as the run picker and the table of runs see them."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from vae_tf import runs
from vae_tf.runs import RunRef

from . import cache, server

RUN_COLUMNS = ["name", "status", "test_elbo", "log_px", "dataset", "latent_dim", "hidden", "decoder", "likelihood",
               "sigma", "objective", "mc_samples", "beta", "learning_rate", "batch_size", "epochs_done",
               "train_elbo", "updated"]


def names(root: Path | None = None) -> list[str]:
    return runs.run_names(root or server.checkpoints_root())


def ref(name: str, root: Path | None = None) -> RunRef:
    """The run's identity now: its stamp changes whenever its files are rewritten."""
    return RunRef.of(name, root or server.checkpoints_root())


def exists(name: str) -> bool:
    return name in names()


def loadable(root: Path) -> tuple[list[str], dict[str, str]]:
    """The runs that look whole, and {name: why not} for the others."""
    good, broken = [], {}
    for name in runs.run_names(root):
        problem = cache.run_problem(RunRef.of(name, root))
        if problem:
            broken[name] = problem
        else:
            good.append(name)
    return good, broken


def owner(name: str, root: Path | None = None) -> str | None:
    try:
        return runs.owner_of(runs.run_dir(name, root or server.checkpoints_root()))
    except runs.CheckpointError:  # a folder whose name is no run name: listed as broken, owned by nobody
        return None


def visible(names_: list[str], visitor: str, others: bool, root: Path | None = None) -> list[str]:
    """The picker's runs: the visitor's own first, then the shipped and the server's own (no owner); other
    visitors' runs only when asked for. A link names a run; it never shows or grants another's."""
    owners = {n: owner(n, root) for n in names_}
    mine = [n for n in names_ if owners[n] == visitor]
    public = [n for n in names_ if owners[n] is None]
    theirs = [n for n in names_ if owners[n] not in (None, visitor)] if others else []
    return mine + public + theirs


def summaries(run_names) -> dict:
    """name → run summary (config, meta, final epoch) for each readable run."""
    out = {}
    for name in run_names:
        try:
            out[name] = cache.run_summary(ref(name))
        except runs.CheckpointError:
            pass
    return out


def histories(run_names) -> dict:
    return {name: cache.run_history(ref(name)) for name in run_names}


def comparable(summ: dict) -> bool:
    """True when all runs model the same data with the same likelihood: only then do their nats compare."""
    return len({(s["config"]["dataset"], s["config"]["likelihood"]) for s in summ.values()}) <= 1


def describe(config: dict) -> str:
    return (f"{config['objective']} objective, k = {config['mc_samples']}, latent {config['latent_dim']}, hidden "
            f"{','.join(map(str, config['hidden']))}, {config['epochs']} epochs, {config['likelihood']} likelihood")


def table(root: Path, shown: list[str] | None = None) -> pd.DataFrame:
    """The runs on disk (those in `shown`, and every folder that cannot load), newest first, with the reason a
    run cannot be loaded."""
    df = runs.list_runs(root) if root.is_dir() else pd.DataFrame(columns=RUN_COLUMNS)
    if shown is not None and not df.empty:
        df = df[df["name"].isin(shown) | df["error"].fillna("").astype(bool)]
    if df.empty:
        return pd.DataFrame(columns=RUN_COLUMNS)
    df = df[[c for c in RUN_COLUMNS + ["error"] if c in df.columns]].copy()
    # list_runs reads the JSON files; the sidebar's check also reads names and the weights file
    df["error"] = [e if e else (cache.run_problem(RunRef.of(n, root)) or "")
                   for n, e in zip(df["name"], df["error"].fillna(""))]
    # sigma mixes numbers and "learned"; dataset may be a long path: show both as short text
    df["sigma"] = [("" if lk != "gaussian" else str(s)) for s, lk in zip(df["sigma"], df["likelihood"])]
    df["dataset"] = [Path(d).name if isinstance(d, str) and d.endswith(".npz") else d for d in df["dataset"]]
    # a run still marked "training" that no worker of this server trains was cut off (the server was killed)
    now = {j.name for j in cache.trainings().values() if j.running}
    df["status"] = [("interrupted" if s == "training" and n not in now else s)
                    for n, s in zip(df["name"], df["status"])]
    if not df["error"].fillna("").astype(bool).any():
        df = df.drop(columns="error")
    if df["log_px"].isna().all():  # no run evaluated yet (python -m vae_tf evaluate): not a column of "None"
        df = df.drop(columns="log_px")
    return df.sort_values("updated", ascending=False, na_position="last").reset_index(drop=True)


def deletable(name: str, visitor: str) -> str | None:
    """Why the visitor may not delete run `name`, or None if they may."""
    if name in server.SHIPPED:
        return "shipped runs are protected"
    who = owner(name)
    if who is None:
        return "it belongs to the server (trained outside the app)"
    return None if who == visitor else "it is another visitor's"


def delete(name: str, visitor: str) -> str | None:
    """Delete the visitor's own run; the reason if not allowed."""
    from vae_tf import archive

    why = deletable(name, visitor)
    if why is None:
        archive.delete(runs.run_dir(name, server.checkpoints_root()), server.checkpoints_root())
    return why

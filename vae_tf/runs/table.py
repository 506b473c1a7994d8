"""The table of runs: one row per run folder, its settings and final numbers, or why it cannot be read."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .files import DEFAULT_ROOT, CheckpointError, read_config, read_history, read_meta


def list_runs(root: Path | str = DEFAULT_ROOT) -> pd.DataFrame:
    """One row per readable run: name, config fields, epochs, final metrics; unreadable runs get an error."""
    rows = []
    root = Path(root)
    for path in sorted(p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")):
        row = {"name": path.name}
        try:
            meta = read_meta(path)
            config = read_config(path)
            history = read_history(path)
            final = (history.get("epochs") or [{}])[-1]
            row.update(config.to_dict())
            row["hidden"] = ",".join(map(str, config.hidden))
            row.update({"epochs_done": meta.get("epochs_done"), "status": meta.get("status", ""),
                        "test_elbo": final.get("test_elbo"), "train_elbo": final.get("train_elbo"),
                        "log_px": (meta.get("evaluation") or {}).get("log_px"),
                        "updated": meta.get("updated"), "error": ""})
        except CheckpointError as e:
            row["error"] = str(e)
        rows.append(row)
    columns = ["name", "status", "dataset", "latent_dim", "hidden", "decoder", "likelihood", "sigma", "objective",
               "epochs", "epochs_done", "batch_size", "learning_rate", "beta", "mc_samples", "seed",
               "test_elbo", "log_px", "train_elbo", "updated", "error"]
    df = pd.DataFrame(rows)
    for c in columns:
        if c not in df:
            df[c] = None
    return df[columns + [c for c in df.columns if c not in columns]]

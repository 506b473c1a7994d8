"""Train: a new run from the sidebar's hyperparameters, its live curves, and every run side by side."""
import functools

import streamlit as st

from ui.escape import md
from ui import active, cache, catalog, links, progress, session, sidebar, training, uploads, widgets, workers

INTRO = ("Adam maximises the ELBO = E_q(z|x)[log p(x|z)] − KL(q(z|x) ‖ p(z)), a lower bound on log p(x), with the "
         "hyperparameters in the sidebar; with the iwae objective it maximises instead the tighter bound "
         "L_k = E[log (1/k) Σᵢ p(x, zᵢ)/q(zᵢ|x)] over k samples zᵢ ~ q(z|x), and its curve shows L_k. The result is "
         "saved as a new run and becomes the active run that every page shows.")
CURVES = ("Faint lines: the ELBO and its two terms on each training batch; bold: their moving average; orange: the "
          "whole test set after each epoch. The reconstruction term rises as the decoder learns; the KL term is the "
          "price, in nats, of what z records about x.")
RUNS_COLUMNS = {
    "test_elbo": st.column_config.NumberColumn("test ELBO", format="%.2f", help="after the last epoch, nats/image"),
    "train_elbo": st.column_config.NumberColumn("train ELBO", format="%.2f"),
    "log_px": st.column_config.NumberColumn("log p(x)", format="%.2f", help="importance-sampled, if evaluated"),
    "learning_rate": st.column_config.NumberColumn("lr", format="%.0e"),
    "epochs_done": st.column_config.NumberColumn("epochs", format="%g"),
    "latent_dim": st.column_config.NumberColumn("latent"),
}


def next_run(s, busy: bool):
    st.subheader("Next run")
    st.session_state.setdefault(session.TRAIN_NAME, training.suggest_name(s.root))
    name = st.text_input("Run name", key=session.TRAIN_NAME, max_chars=64, persist_state="session",
                         disabled=busy,
                         help="Letters, digits, '.', '_' and '-'. An existing run is never overwritten.")
    problem = None if busy else training.name_problem(name, s.root)
    if problem:
        st.error(f"Run name: {md(problem)}.")
    refused = None
    if s.config_error:
        st.error(f"Fix the hyperparameters in the sidebar first — {md(s.config_error)}.")
    elif s.config is not None and not busy:
        c = s.config
        took, refused = training.cost(c)
        images = f"{c.max_train_images:,}" if c.max_train_images else "all"
        st.caption(f"{training.plural(c.epochs, 'epoch')} of {images} training images of "
                   f"{sidebar.dataset_label(c.dataset)}, "
                   f"batches of {c.batch_size}, latent {c.latent_dim}, hidden {','.join(map(str, c.hidden))}, "
                   f"{c.decoder} decoder, {c.likelihood} likelihood, {c.objective} objective"
                   + (f"; estimated {took} on this server." if took and not refused else "."))
        if refused:
            st.error(f"Cannot train: {refused}.")
    st.button("Train", type="primary", icon=":material/play_arrow:", key="train.go", on_click=training.request,
              disabled=bool(problem or s.config_error or refused or busy),
              help="Your training is running: see the sidebar." if busy else None)


def own_data(busy: bool):
    st.subheader("Your own data set")
    st.file_uploader("A .npz with x_train and x_test (N, H, W), uint8 0–255 or float 0–1; optional labels "
                     "y_train, y_test", type=["npz"], key="page.train.upload", on_change=uploads.on_upload,
                     disabled=busy)
    result = st.session_state.get(session.UPLOAD_RESULT)
    if result:
        getattr(st, result[0])(result[1])


def continue_training(s):
    """More epochs for the active run, from where it stopped (the trainer resumes exactly)."""
    meta, cfg = s.run_summary["meta"], s.run_summary["config"]
    why_not = catalog.deletable(s.run_name, session.visitor()) or (
        "it diverged" if meta.get("status") == "diverged" else None)
    with st.expander(f"Continue training {s.run_name}", icon=":material/resume:"):
        more = st.number_input("More epochs", 1, 100, 5, key="page.train.more", disabled=bool(why_not),
                               help="Adds epochs to the run, with its own settings; the run keeps its name.")
        st.button(f"Train {s.run_name} for {more} more", key="train.continue", on_click=training.continue_run,
                  args=(s.run_name, more), disabled=bool(why_not), icon=":material/resume:")
        done = meta.get("epochs_done", 0)
        st.caption(f"It has {done:g} of {cfg['epochs']} epochs." + (f" Not possible here: {why_not}." if why_not
                                                                       else ""))


def manage_run(s):
    """Download the active run, delete it if it is the visitor's, or upload a run .zip."""
    from vae_tf import archive

    me = session.visitor()
    c1, c2, c3 = st.columns(3, gap="medium")
    if s.run_name:
        c1.download_button(f"Download {s.run_name} (.zip)", functools.partial(archive.pack, s.ref.path),
                           f"{s.run_name}.zip", "application/zip", icon=":material/download:", key="train.download",
                           on_click="ignore")
        why_not = catalog.deletable(s.run_name, me)
        sure = c2.checkbox(f"Yes, delete {s.run_name}", key="train.delete_sure", disabled=bool(why_not),
                           help=f"Not possible: {why_not}." if why_not else "Deleting cannot be undone.")
        c2.button("Delete the active run", key="train.delete", icon=":material/delete:",
                  disabled=bool(why_not) or not sure, on_click=_delete, args=(s.run_name, me))
    c3.file_uploader("Add a run (.zip, as downloaded)", type=["zip"], key="page.train.run_upload",
                     on_change=uploads.on_run_upload)


def _delete(name: str, visitor: str):
    why = catalog.delete(name, visitor)
    session.flash("warning" if why else "success", f"Cannot delete {name}: {why}." if why else f"Deleted {name}.")
    st.session_state.pop("train.delete_sure", None)


def all_runs(s):
    st.subheader("All runs")
    manage_run(s)
    shown = catalog.visible(catalog.names(s.root), session.visitor(), bool(st.session_state.get(session.SHOW_OTHERS)))
    table = catalog.table(s.root, shown)
    if table.empty:
        st.info("No runs yet.")
        return
    st.dataframe(table, hide_index=True, column_config=RUNS_COLUMNS)
    st.caption(f"Active run: **{s.run_name}**. Test ELBOs compare only between runs on the same data set and "
               "likelihood: a Gaussian likelihood's log-density is not on the Bernoulli's scale.")


def train_page():
    s = active.settings()
    st.title("Train a VAE")
    st.markdown(INTRO)
    job = training.current()
    busy = job is not None and job.running
    if not busy:
        workers.keep_ready()  # a worker with TensorFlow imported, so that the next click trains at once
    left, right = st.columns([3, 2], gap="large")
    with left:
        next_run(s, busy)
    with right:
        own_data(busy)
    if busy:
        progress.live_curves(job.steps_per_epoch)
    elif s.run_name and s.run_summary:
        continue_training(s)
    if s.run_name and s.run_summary:
        st.subheader(f"Training curves of the active run, {s.run_name}")
        history = cache.run_history(s.ref)
        widgets.chart(progress.history_curves(history, s.run_summary["meta"].get("steps_per_epoch", 1)), CURVES)
    all_runs(s)


links.run_page(train_page)

"""Train: a new run from the sidebar's hyperparameters, its live curves, and every run side by side."""
import streamlit as st

from ui import active, cache, catalog, links, session, sidebar, training, uploads, widgets

INTRO = ("Adam maximises the ELBO = E_q(z|x)[log p(x|z)] − KL(q(z|x) ‖ p(z)), a lower bound on log p(x), with the "
         "hyperparameters in the sidebar. The result is saved as a new run and becomes the active run that every "
         "page shows.")
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


def next_run(s, request):
    st.subheader("Next run")
    st.session_state.setdefault(session.TRAIN_NAME, training.suggest_name(s.root))
    name = st.text_input("Run name", key=session.TRAIN_NAME, max_chars=64, persist_state="session",
                         disabled=bool(request),
                         help="Letters, digits, '.', '_' and '-'. An existing run is never overwritten.")
    problem = None if request else training.name_problem(name, s.root)
    if problem:
        st.error(f"Run name: {problem}.")
    if s.config_error:
        st.error(f"Fix the hyperparameters in the sidebar first — {s.config_error}.")
    elif s.config is not None and not request:
        c = s.config
        images = f"{c.max_train_images:,}" if c.max_train_images else "all"
        st.caption(f"{c.epochs} epochs of {images} training images of {sidebar.dataset_label(c.dataset)}, "
                   f"batches of {c.batch_size}, latent {c.latent_dim}, hidden {','.join(map(str, c.hidden))}, "
                   f"{c.decoder} decoder, {c.likelihood} likelihood, {c.objective} objective.")
    st.button("Train", type="primary", icon=":material/play_arrow:", key="train.go", on_click=training.request,
              disabled=bool(problem or s.config_error or request))


def own_data(request):
    st.subheader("Your own data set")
    st.file_uploader("A .npz with x_train and x_test (N, H, W), uint8 0–255 or float 0–1; optional labels "
                     "y_train, y_test", type=["npz"], key="page.train.upload", on_change=uploads.on_upload,
                     disabled=bool(request))
    result = st.session_state.get(session.UPLOAD_RESULT)
    if result:
        getattr(st, result[0])(result[1])


def all_runs(s):
    st.subheader("All runs")
    table = catalog.table(s.root)
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
    request = st.session_state.pop(session.TRAIN_REQUEST, None)  # set by the Train button's callback
    left, right = st.columns([3, 2], gap="large")
    with left:
        next_run(s, request)
    with right:
        own_data(request)
    if request:
        training.train(request)  # ends with a rerun that makes the new run active
    if s.run_name and s.run_summary:
        st.subheader(f"Training curves of the active run, {s.run_name}")
        history = cache.run_history(s.ref)
        widgets.chart(training.history_curves(history, s.run_summary["meta"].get("steps_per_epoch", 1)), CURVES)
    all_runs(s)


links.run_page(train_page)

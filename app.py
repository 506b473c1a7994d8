"""VAE Lab: train a variational autoencoder and look inside it.

The entry point: page config, one sidebar shared by every page, then the page picked in the
navigation. Run with `streamlit run app.py`. To add a page, put its file in pages/ (named as its
URL, its body a function run through ui.links.run_page) and one st.Page line in PAGES below.
"""
import streamlit as st

from ui import disk, links, prewarm, progress, script_runs, server, session, sidebar, training

script_runs.keep_keras_session()  # a script run's end no longer clears TensorFlow's kernel cache (ui/script_runs.py)
script_runs.began()  # the server's background work waits for a lull in script runs
st.set_page_config(page_title="VAE Lab", page_icon=":material/science:", layout="wide")

PAGES = [
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train", default=True),
    st.Page("pages/reconstructions.py", title="Reconstructions", icon=":material/compare:",
            url_path="reconstructions"),
    st.Page("pages/interpolation.py", title="Interpolation", icon=":material/linear_scale:", url_path="interpolation"),
    st.Page("pages/log-px.py", title="log p(x) vs ELBO", icon=":material/functions:", url_path="log-px"),
    st.Page("pages/bound.py", title="How tight is the bound?", icon=":material/height:", url_path="bound"),
    st.Page("pages/posterior.py", title="True posterior", icon=":material/blur_on:", url_path="posterior"),
    st.Page("pages/theory.py", title="Theory", icon=":material/function:", url_path="theory"),
    st.Page("pages/prior-sampling.py", title="Why not sample the prior?", icon=":material/casino:",
            url_path="prior-sampling"),
    st.Page("pages/latent-map.py", title="Latent map", icon=":material/scatter_plot:", url_path="latent-map"),
    st.Page("pages/latent.py", title="Latent diagnostics", icon=":material/bar_chart:", url_path="latent"),
    st.Page("pages/compare.py", title="Compare runs", icon=":material/stacked_line_chart:", url_path="compare"),
]

page = st.navigation(PAGES)
links.remember()  # the URL this session opened with: its settings seed the widgets bound to it
disk.seen(session.visitor())  # this visitor is here: their runs and uploads are not abandoned
training.finalize()  # this visitor's training, if it has ended: say how it went, make it active if it learned
progress.follow()  # while it trains, the pages may show its latest saved epoch
slot = st.sidebar.container()  # its progress and Stop, on every page, above the run picker
sidebar.render(page.url_path)
progress.sidebar(slot)
session.show_flash()
link_notice = st.container()  # which of a link's settings could not be used
links.report(link_notice)  # the run and hyperparameters (drawn by now), and names that are no setting at all
prewarm.start(str(server.checkpoints_root()))  # once per server: the log p(x) and bound pages' default answers
page.run()
links.report(link_notice)  # the page's own settings (a page that stops early is checked on a later run)

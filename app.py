"""VAE Lab: train a variational autoencoder and look inside it.

The entry point: page config, one sidebar shared by every page, then the page picked in the
navigation. Run with `streamlit run app.py`. To add a page, put its file in pages/ and one
st.Page line in PAGES below; shared helpers live in ui/.

A page's url_path must differ from its file's name (pages/training.py is served at /train):
Streamlit still treats a pages/ folder as an old-style multipage app until st.navigation has
run (AppTest resets that before every run), and an old-style page whose name matches the
requested url_path would run on its own, without this file and its sidebar.
"""
import streamlit as st

from ui import common, links, logpx, sidebar, state, training

st.set_page_config(page_title="VAE Lab", page_icon=":material/science:", layout="wide")

PAGES = [
    st.Page("pages/training.py", title="Train", icon=":material/model_training:", url_path="train", default=True),
    st.Page("pages/reconstruct.py", title="Reconstructions", icon=":material/compare:", url_path="reconstructions"),
    st.Page("pages/interpolate.py", title="Interpolation", icon=":material/linear_scale:", url_path="interpolation"),
    st.Page("pages/log_px.py", title="log p(x) vs ELBO", icon=":material/functions:", url_path="log-px"),
    st.Page("pages/true_posterior.py", title="True posterior", icon=":material/blur_on:", url_path="posterior"),
    st.Page("pages/derivation.py", title="Theory", icon=":material/function:", url_path="theory"),
    st.Page("pages/prior_proposal.py", title="Why not sample the prior?", icon=":material/casino:",
            url_path="prior-sampling"),
    st.Page("pages/latent_space.py", title="Latent map", icon=":material/scatter_plot:", url_path="latent-map"),
    st.Page("pages/compare_runs.py", title="Compare runs", icon=":material/stacked_line_chart:", url_path="compare"),
]

page = st.navigation(PAGES)
links.remember()  # the URL this session opened with: its settings seed the widgets bound to it
training.finalize()  # a training interrupted by this rerun (Stop, a page switch) becomes the active run
sidebar.render(page.url_path)
common.show_flash()
link_notice = st.container()  # which of a link's settings could not be used
links.report(link_notice)  # the run and hyperparameters (drawn by now), and names that are no setting at all
logpx.prewarm(str(state.checkpoints_root()))  # once per server: the log p(x) page's default answer
page.run()
links.report(link_notice)  # the page's own settings (a page that stops early is checked on a later run)

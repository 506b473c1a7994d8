"""Streamlit glue for VAE Lab: the one sidebar, cached loaders, background jobs, session keys.

Pages import from here; the maths lives in `vae_tf`, which never imports Streamlit.
"""

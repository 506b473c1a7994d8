"""The benchmark of VAE Lab: vae_tf against straightforward baselines, and the app's start and page
switches. Run it from the repository root: python -m benchmarks --help. The library never imports it."""
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

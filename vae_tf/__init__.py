"""VAE Lab's library: data, model, training, estimators and checkpoints. No Streamlit here."""
from .config import Config, ConfigError, FIELDS

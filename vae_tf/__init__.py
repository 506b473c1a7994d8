"""VAE Lab's library: data, model, training, estimators and runs on disk. No Streamlit here."""
from .config import FIELDS, Config, ConfigError

__all__ = ["FIELDS", "Config", "ConfigError"]

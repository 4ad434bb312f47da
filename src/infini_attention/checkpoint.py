"""Model folders: moved to models/io.py; these names keep working."""

from infini_attention.models.io import load_config, load_model, save_model

__all__ = ["load_config", "load_model", "save_model"]

"""spacy-ie: trainable relation extraction and attention-based text classification for spaCy."""
from .relations import Relation, register_extensions

__version__ = "0.1.0"
__all__ = ["Relation", "register_extensions", "__version__"]

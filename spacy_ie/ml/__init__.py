"""Thinc layers and architectures of spacy_ie, one idea per module."""

# The standalone tok2vec of the components' default model configs (as spaCy's own defaults),
# used when a pipeline has no shared tok2vec for the component to listen to.
DEFAULT_TOK2VEC_CONFIG = """
[model.tok2vec]
@architectures = "spacy.HashEmbedCNN.v2"
pretrained_vectors = null
width = 96
depth = 4
embed_size = 2000
window_size = 1
maxout_pieces = 3
subword_features = true
"""

# Registers spacy_ie.TypedMarkerRelationModel.v1 wherever the relation_extractor loads (its
# module imports this package), also where the installed entry points predate it. The module
# imports spacy-transformers only when a model is built.
from . import marker_model  # noqa: E402,F401

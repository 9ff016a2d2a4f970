"""``python -m spacy_ie``: the spacy-ie command line."""
from .cli import main

if __name__ == "__main__":
    main()

"""biasaudit: audit social bias in word embeddings and trace it back to the training documents that caused it."""

__version__ = "0.1.0"

"""Samlad gateway: authenticates, decides access, fans out, merges and renders FHIR."""

__version__ = "0.1.0"

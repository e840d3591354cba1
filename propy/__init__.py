"""ProPy: prompt pyramids on a frozen CLIP for Partially Relevant Video Retrieval."""

__version__ = "0.1.0"

"""Data layer: annotations, converters, synthetic benchmark, video decoding, frame cache."""

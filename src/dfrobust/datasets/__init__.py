"""Datasets: the FaceForensics++ layout and the embedded demo dataset that mimics it."""

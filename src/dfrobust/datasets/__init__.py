"""Datasets in FaceForensics++ layout: the index of real FF++ copies and the embedded demo."""

"""dfrobust: how much do deepfake detectors lose under everyday video processing?"""

__version__ = "0.1.0"

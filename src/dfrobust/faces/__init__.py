"""Face detection, 68-point landmarks, FF++-style crops, and the per-shard face store."""

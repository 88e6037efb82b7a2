"""Video I/O through the ffmpeg binary, and the operations applied to test videos."""

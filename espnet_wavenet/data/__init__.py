"""Data directories, audio and features on disk."""

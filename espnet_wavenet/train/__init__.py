"""Training pieces used by the ESPnet task."""

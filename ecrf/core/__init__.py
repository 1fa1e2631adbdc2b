"""The shared kernel every area builds on."""

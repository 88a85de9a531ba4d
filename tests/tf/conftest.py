"""Fixtures of the TensorFlow tests (helpers/tf_releases.py holds them and their helpers)."""
from helpers.tf_releases import other_tensorflow  # noqa: F401

"""Gradient checks: autograd checks for models and functions."""

"""Conversion sources, one sub-package per framework the registry's ``framework`` names."""

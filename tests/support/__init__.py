"""Builders shared by the tests (no test module imports another): walks, panels, lakes, perturbations."""

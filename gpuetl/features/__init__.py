"""The feature engine: ops computed on a (Code, Date) panel through the backend seam, their targets and their
normalised view; gpuetl/dataset/registry.py lists every op."""

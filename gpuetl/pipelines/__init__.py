"""Runnable jobs that compose library stages (fetch, ...), importable from the installed package."""

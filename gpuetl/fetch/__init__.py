"""The fetch pipeline: what to request (`plan`), the paced async run into the lake (`pipeline`), and its summary
and progress display (`report`). `gpuetl fetch` is its command."""

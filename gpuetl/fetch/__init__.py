"""The fetch pipeline: what to request (`plan`), the paced async run into the lake (`pipeline`), and its summary
and progress display (`report`). `gpuetl fetch` is its command; `files` imports files a user already holds into
the lake, unit for unit as a fetch writes them (`gpuetl import`)."""

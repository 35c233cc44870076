"""J-Quants: the dataset catalogue (spec), the async client, the fake server and the synthetic market."""

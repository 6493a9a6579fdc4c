bench:
	uv run python bench/run_all.py

.PHONY: bench

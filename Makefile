.PHONY: help demo test bench

help: ## List targets (default)
	@echo "make demo   build and run the demo server (scripts/demo.sh)"
	@echo "make test   run every test (scripts/test.sh)"
	@echo "make bench  browser benchmark of the IndexedDB store (bench/run.sh; docs/benchmarks.md)"

demo:
	scripts/demo.sh

test:
	scripts/test.sh

bench: ; bench/run.sh

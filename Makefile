.PHONY: help demo test bench pkg

help: ## List targets (default)
	@echo "make demo   build and run the demo server (scripts/demo.sh)"
	@echo "make test   run every test (scripts/test.sh)"
	@echo "make pkg    build the npm package into pkg/ and pack it (scripts/build-pkg.sh)"
	@echo "make bench  browser benchmark of the IndexedDB store (bench/run.sh; docs/benchmarks.md)"

demo:
	scripts/demo.sh

test:
	scripts/test.sh

pkg:
	scripts/build-pkg.sh

bench: ; bench/run.sh

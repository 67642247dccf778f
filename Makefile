.PHONY: help demo test

help: ## List targets (default)
	@echo "make demo   build and run the demo server (scripts/demo.sh)"
	@echo "make test   run every test (scripts/test.sh)"

demo:
	scripts/demo.sh

test:
	scripts/test.sh

.DEFAULT_GOAL := help
.PHONY: help run demo test lint format postman bench bench-scaling bench-codecs bench-previews bench-faults bench-fairness bench-hostile bench-memory bench-status

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: ## Start the service on http://127.0.0.1:8000 (venv, locked deps, migrations, API + worker)
	@./scripts/bootstrap.sh --no-dev
	.venv/bin/batchpress serve

demo: ## Try it without the internet: a local origin of sample photos, the service on temporary data, a batch of them
	@./scripts/bootstrap.sh --no-dev
	.venv/bin/batchpress demo

# Test processes: most tests wait on real servers, workers and browsers, so more of them than cores keeps the
# cores busy (docs/performance.md, "Test suite").
TEST_PROCESSES ?= 4

test: ## Lint, type-check and run the whole test suite
	@./scripts/bootstrap.sh
	.venv/bin/ruff format --check batchpress benchmarks scripts tests
	.venv/bin/ruff check batchpress benchmarks scripts tests
	.venv/bin/mypy
	.venv/bin/python -m pytest -n $(TEST_PROCESSES) --dist worksteal

lint: ## ruff and mypy only
	@./scripts/bootstrap.sh
	.venv/bin/ruff format --check batchpress benchmarks scripts tests
	.venv/bin/ruff check batchpress benchmarks scripts tests
	.venv/bin/mypy

format: ## Apply ruff's formatting and safe fixes
	@./scripts/bootstrap.sh
	.venv/bin/ruff format batchpress benchmarks scripts tests
	.venv/bin/ruff check --fix batchpress benchmarks scripts tests

postman: ## Regenerate docs/batchpress.postman_collection.json from the OpenAPI schema (tests/test_postman.py checks it)
	@./scripts/bootstrap.sh
	.venv/bin/python scripts/postman.py

bench: ## Throughput against the codec limit, Pillow q50 and a naive baseline; output bytes and SSIMULACRA2; ingest, status latency (< 10 min)
	@./scripts/bootstrap.sh
	.venv/bin/python -m benchmarks.bench

bench-fairness: ## A 3-image request's latency beside a 1,440-image batch (10 tries), and what it costs the batch
	@./scripts/bootstrap.sh
	.venv/bin/python -m benchmarks.fairness

bench-scaling: ## Images/s with 1 and 2 worker processes on PostgreSQL + Redis, and their ratio
	@./scripts/bootstrap.sh
	.venv/bin/python -m benchmarks.scaling

bench-codecs: ## Per-core speed, size and quality of Pillow, pyvips, simplejpeg, libimagequant per format
	@./scripts/bootstrap.sh
	.venv/bin/python -m benchmarks.codecs

bench-previews: ## CPU time per image with and without the previews, by format and effort, and their bytes (~2 min)
	@./scripts/bootstrap.sh
	.venv/bin/python -m benchmarks.previews

bench-status: ## Cold render time and bytes of every status page of the largest accepted requests; a small read beside 16 readers of them
	@./scripts/bootstrap.sh
	.venv/bin/python -m benchmarks.status_pages

bench-faults: ## Batch time without and with a fault: kill -9 of a worker, pool process or serve, Redis restart, DB connections dropped (< 15 min)
	@./scripts/bootstrap.sh
	.venv/bin/python -m benchmarks.faults

bench-hostile: ## What hostile PNG, GIF and WebP files cost Pillow, and what the structural checks cost (~5 min)
	@./scripts/bootstrap.sh
	.venv/bin/python -m benchmarks.hostile_images

bench-memory: ## Peak RSS and time of a pool process per image: 50 MP photos of every format, hostile files (< 15 min)
	@./scripts/bootstrap.sh
	.venv/bin/python -m benchmarks.memory

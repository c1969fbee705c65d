#!/usr/bin/env bash
# Every gate CI runs, as one command a developer can run locally: format, lint, types, the
# import floors, then the tests with coverage. Run from anywhere; uses .venv when present.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then export PATH="$PWD/.venv/bin:$PATH"; fi

echo "== ruff format --check"; ruff format --check .
echo "== ruff check";          ruff check .
echo "== mypy (strict: orchestrator, infra, ami; trainers typed)"; mypy
echo "== import-linter";        lint-imports
echo "== pytest"
export COVERAGE_ROOT="$PWD"
python -m pytest --cov --cov-report=term --cov-fail-under="${COV_FLOOR:-$(cat .ci/coverage-floor)}" "$@"
echo "== coverage of orchestrator/, infra/, ami/ (never below 80%)"
coverage report --include='orchestrator/*,infra/*,ami/*' --fail-under=80 | grep TOTAL

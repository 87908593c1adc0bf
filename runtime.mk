# Included by layers/common/Makefile and functions/function.mk, which sam build runs (BuildMethod: makefile):
# the Lambda runtime's Python and the bytecode it accepts (docs/deploy.md, "Cold starts").
# - RUNTIME_PYTHON_VERSION: read from template.yaml's `Runtime: pythonX.Y`, the one place it is named.
# - RUNTIME_PYTHON: an interpreter of exactly that version (a final release, not free-threaded: its bytecode is
#   the runtime's): python3.X on PATH, else pyenv's, else uv's. Set it to choose; empty = none found.
# - $(call runtime_bytecode,DIR,WHERE_LAMBDA_MOUNTS_IT): removes every __pycache__ under DIR (pycs of other
#   interpreters), then compiles every .py under DIR with RUNTIME_PYTHON into __pycache__/<name>.cpython-3X.pyc
#   with unchecked hashes, which the runtime loads as they are: no source check, nothing to write. Without
#   RUNTIME_PYTHON the build goes on without bytecode (the code still runs, its cold starts are slower) and
#   prints a WARNING saying what to install; tests/unit/test_bytecode.py fails.
ifneq ($(MAKECMDGOALS),print-runtime-python)
ifeq ($(strip $(ARTIFACTS_DIR)),)
$(error ARTIFACTS_DIR is not set: sam build sets it to the directory the build goes to)
endif
endif

RUNTIME_MK_DIR := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
RUNTIME_TEMPLATE ?= $(RUNTIME_MK_DIR)/template.yaml

ifeq ($(origin RUNTIME_PYTHON_VERSION),undefined)
RUNTIME_PYTHON_VERSION := $(shell sed -n 's/^[[:space:]]*Runtime:[[:space:]]*python\([0-9][0-9.]*\)[[:space:]]*$$/\1/p' \
	"$(RUNTIME_TEMPLATE)" | sort -u)
endif
ifeq ($(RUNTIME_PYTHON_VERSION),)
$(error no `Runtime: pythonX.Y` in $(RUNTIME_TEMPLATE))
endif
ifneq ($(words $(RUNTIME_PYTHON_VERSION)),1)
$(error $(RUNTIME_TEMPLATE) names several Python runtimes ($(RUNTIME_PYTHON_VERSION)): the layer is built for one)
endif

RUNTIME_CACHE_TAG := cpython-$(subst .,,$(RUNTIME_PYTHON_VERSION))
RUNTIME_PYTHON_CANDIDATES := \
	$(foreach dir,$(subst :, ,$(PATH)),$(wildcard $(dir)/python$(RUNTIME_PYTHON_VERSION))) \
	$(foreach root,$(sort $(PYENV_ROOT) $(HOME)/.pyenv), \
		$(wildcard $(root)/versions/$(RUNTIME_PYTHON_VERSION).*/bin/python$(RUNTIME_PYTHON_VERSION))) \
	$(wildcard $(HOME)/.local/share/uv/python/cpython-$(RUNTIME_PYTHON_VERSION).*/bin/python$(RUNTIME_PYTHON_VERSION))
# A candidate counts only if it runs (a pyenv shim of a version not selected does not) and is the runtime's
# kind of interpreter: same bytecode tag, a final release, not free-threaded.
RUNTIME_PYTHON_PROBE := import sys, sysconfig; final = sys.version_info.releaselevel == "final"; \
	print(sys.implementation.cache_tag if final and not sysconfig.get_config_var("Py_GIL_DISABLED") else "")
ifeq ($(origin RUNTIME_PYTHON),undefined)
RUNTIME_PYTHON := $(shell for python in $(RUNTIME_PYTHON_CANDIDATES); do \
	if [ "$$("$$python" -c '$(RUNTIME_PYTHON_PROBE)' 2>/dev/null)" = "$(RUNTIME_CACHE_TAG)" ]; then \
		echo "$$python"; break; fi; done)
endif

# Paths inside the pycs (tracebacks) are where Lambda mounts the code, not this machine's: the same sources
# give the same bytes wherever they are built, so a rebuild changes no artefact and `sam deploy` uploads none.
RUNTIME_BYTECODE_COMPILE := "$(RUNTIME_PYTHON)" -m compileall -q -j 0 \
	--invalidation-mode unchecked-hash
RUNTIME_BYTECODE_MISSING := WARNING: no Python $(RUNTIME_PYTHON_VERSION) interpreter found (python$(RUNTIME_PYTHON_VERSION) \
	on PATH, pyenv or uv): built WITHOUT bytecode, so every cold start compiles this code. Install one (pyenv \
	install $(RUNTIME_PYTHON_VERSION); uv python install $(RUNTIME_PYTHON_VERSION); or your package manager: \
	python$(RUNTIME_PYTHON_VERSION)) or set RUNTIME_PYTHON=/path/to/python$(RUNTIME_PYTHON_VERSION).
define runtime_bytecode
find "$(1)" -name __pycache__ -type d -prune -exec rm -rf {} +
$(if $(RUNTIME_PYTHON),$(RUNTIME_BYTECODE_COMPILE) -d "$(2)" "$(1)",@echo '$(RUNTIME_BYTECODE_MISSING)')
endef

.PHONY: print-runtime-python
## make -s -f <a Makefile that includes this> print-runtime-python: the version, then the interpreter found.
print-runtime-python:
	@echo "$(RUNTIME_PYTHON_VERSION)"
	@echo "$(RUNTIME_PYTHON)"
# Leave the including Makefile's first rule its default goal.
.DEFAULT_GOAL :=

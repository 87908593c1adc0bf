# Included by every functions/<name>/Makefile, which sam build runs (BuildMethod: makefile):
#     include $(dir $(lastword $(MAKEFILE_LIST)))../function.mk
#     build-<LogicalId>: function
# The handler is all a function ships, with its bytecode for the Lambda runtime (../runtime.mk).
include $(dir $(lastword $(MAKEFILE_LIST)))../runtime.mk

.PHONY: function
function:
	cp app.py "$(ARTIFACTS_DIR)/"
	$(call runtime_bytecode,$(ARTIFACTS_DIR),/var/task)

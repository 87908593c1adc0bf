"""`make bench` (`python -m bench`): request counts, cold imports, memory, one refresh against Authlib's and
the keep-alive's fan-out, each against a baseline measured in the same run. Not tests: pytest never collects
this folder."""

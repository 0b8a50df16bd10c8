# The two commands a newcomer needs (see README.md). Each one sets everything up first.
.PHONY: serve test check bench

serve:            ## set up, then start the dashboard on http://localhost:5006
	scripts/setup.sh app
	.venv/bin/creditlab serve

test:             ## set up with the dev extras, then run the whole test suite
	scripts/setup.sh dev
	.venv/bin/python -m pytest

check:            ## set up, then the fast tests only (no browser, nothing marked slow): minutes
	scripts/setup.sh dev
	.venv/bin/python -m pytest -m "not slow and not browser"

bench:            ## time a training step of every rule against backprop's
	scripts/setup.sh app
	.venv/bin/creditlab bench

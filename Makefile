# Shortcuts for the two commands of the README (the scripts need nothing but Python).
.PHONY: run test
run:
	scripts/run
test:
	scripts/test

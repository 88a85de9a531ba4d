"""`juno-bridge demo` and what it runs on: a toy JUNO detector (detector), a toy event generator (toymc),
the default reconstruction model in its three forms and the benchmark models (models), and the
comparison of the methods itself (comparison.run_demo)."""

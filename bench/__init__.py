"""Benchmarks that print figures (not pass/fail tests). Run all: `make bench`."""

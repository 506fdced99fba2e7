"""Benchmarks of the publisher against other Swift clients, run by `make bench`.

Everything runs against one Swift all-in-one started for the run (and a local cluster for
the publish latency), on data generated for the run. See bench/README.md.
"""

"""A stand-in for AceDataCloud on 127.0.0.1, shared by the tests and the benchmarks (not shipped)."""

"""A test plugin that fails at import with something other than ImportError."""

raise RuntimeError("rs_test_broken: simulated failure at import")

"""One module per CLI command: ``add_arguments(parser)`` and ``run(args) -> int``.

Part of the CLI layer: commands may print results to stdout; errors are raised, never printed.
"""

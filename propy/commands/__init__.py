"""One module per ``python -m propy`` command, named after it: each parses its arguments and calls the library.

A command module defines ``configure_parser(parser)`` and ``run(args) -> int``; library code never imports one.
"""

"""Command line: the dashboard by default, headless subcommands for scripts and CI."""

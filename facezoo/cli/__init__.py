"""The `facezoo` command line: one typer app, one module per subcommand group."""

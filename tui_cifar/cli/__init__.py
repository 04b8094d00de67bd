"""The `cifar-tui` command: its subcommands (commands) and their console output."""

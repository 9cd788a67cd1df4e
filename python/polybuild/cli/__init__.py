"""The command line: argument parsing and dispatch only; the work is in the stages and features."""

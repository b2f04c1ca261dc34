"""The base every package stands on: settings, the exception root, periods. Imports nothing else of the project."""

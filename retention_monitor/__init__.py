"""Command line and local stack of retention-monitor."""

"""The stream processing, in data-flow order: contract -> route -> apply -> follow, then at_risk, web and
the worker that wires them; producers are the publishing-side tools. docs/architecture.md draws it."""

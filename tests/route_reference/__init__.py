"""The route stage's Python reference: what the compiled fast path (``native/src/route.rs``) replaced."""

"""The Python reference of the compiled apply step (``native/``): the semantics as first written, run
only by the property tests that compare it with the compiled implementation."""

"""At-risk scoring on the applied states: the tracker, its topic and its HTTP view."""

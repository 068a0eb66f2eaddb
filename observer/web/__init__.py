"""The HTTP edge: the receiving pipeline every source goes through, bodies, answers, /metrics."""

"""The benchmark harness: replay real per-prompt outcomes through the router and baselines."""

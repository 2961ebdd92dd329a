"""Arms in memory and a request in, a decision out; the offline loop (simulate)."""

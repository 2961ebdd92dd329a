"""The pure core: types, settings, features, buckets, posteriors, the policy, rewards, spend.

Imports nothing outside core (numpy and scipy aside) and does no I/O."""

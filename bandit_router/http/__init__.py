"""The aiohttp service: the app, one module per endpoint family, auth, metrics, the gateway."""

"""Chat: a chat platform other products embed through SDKs (tenants, channels, messages, read state).

The package is kept light (the command line reads its settings and CLI without loading the routers):
its AppSpec is `spec.APP`."""

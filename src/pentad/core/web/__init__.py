"""HTTP plumbing shared by every app: middleware stack, health and metrics routes, pages."""

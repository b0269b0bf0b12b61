"""The panel app's rules: one module per area, in check_/do_/notify_ verbs (docs/architecture.md)."""

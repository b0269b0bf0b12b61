"""The ads app's rules, one module per area, in check_/do_ verbs (docs/architecture.md)."""

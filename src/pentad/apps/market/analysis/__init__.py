"""The market analysis: pure functions over order books, fees and the stargate graph (docs/plans/market.md
§3 "Analysis definitions"). Only `routes.load_graph` touches the database, through the repository."""

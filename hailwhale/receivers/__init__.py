"""The network receivers: thin adapters that hand bytes to :class:`hailwhale.aggregate.ingest.Ingest`."""

"""Images and pairs: the built-in stand-in datasets and scenes, user-data ingestion, manifests, pair loading, the oracle generator, the colour range of real pairs."""

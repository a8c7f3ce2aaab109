"""Images and pairs: the built-in stand-in datasets and their scenes, user-data ingestion,
manifests, pair loading, the oracle (physics) generator and the colour range of real pairs."""

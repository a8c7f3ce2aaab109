"""Code the tests share, imported as `helpers.<module>` (pytest puts tests/ on sys.path through
conftest.py); a study in benchmarks/ that needs the same code puts tests/ on its path first."""

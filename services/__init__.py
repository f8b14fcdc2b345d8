"""The two factcheck services."""

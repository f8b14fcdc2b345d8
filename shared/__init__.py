"""Code used by both factcheck services: settings, storage, time axes, the feed contract."""

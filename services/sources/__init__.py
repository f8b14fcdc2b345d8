"""The sources service: sources, their reliability ratings, and the evidence they give."""

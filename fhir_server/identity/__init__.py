"""Cross-hospital patient identity: identifier checks, matching, link sets and the review queue."""

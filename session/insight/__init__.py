"""What a run did and does: status, the live view, log analysis and the report."""

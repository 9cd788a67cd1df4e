"""CI integration: affected targets as a GitHub Actions matrix, job entries, summaries and annotations."""

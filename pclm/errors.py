"""User-facing errors: caught at the CLI edge and reported in one line with exit code 2."""

__all__ = ["UsageError"]


class UsageError(ValueError):
    """Bad input a user can fix: a missing path, an unknown name, a bad config key, a corrupt checkpoint."""

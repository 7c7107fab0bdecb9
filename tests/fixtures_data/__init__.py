"""Generators that write tiny fixtures in each dataset's real on-disk format, at test time."""

"""The built-in synthetic dataset: the open body in plausible poses, rendered with SPIN-style annotations."""

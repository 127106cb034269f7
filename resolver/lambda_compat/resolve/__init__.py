"""Target-exact resolution: the pip engine shim, requirement files, the resolution cache, diagnosis."""

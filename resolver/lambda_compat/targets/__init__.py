"""Lambda targets: runtime facts in, frozen Target values out. Reads nothing of the host."""

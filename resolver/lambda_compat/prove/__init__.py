"""Dynamic proof: import backends, stand-in roots; _payload/ runs inside other interpreters."""

"""Scripts run inside other interpreters (the target's): standard library only, no imports of ours."""

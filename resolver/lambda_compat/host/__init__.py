"""What this machine gives us: local interpreters, sandboxes, qemu binfmt, process lifecycle, output guards."""

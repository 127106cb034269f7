"""Static proof: ELF files, wheels, bundles, static checks, the verdict cache."""

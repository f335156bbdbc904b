"""sonic-exatrkx."""

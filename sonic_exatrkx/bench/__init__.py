"""Benchmark engines behind `sonic-exatrkx bench ...`: library functions that measure and
return results; the CLI only parses options and prints them."""

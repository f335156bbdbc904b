"""The loopback delay proxy for the tests: the library's one implementation."""

from sonic_exatrkx.sonic.delay_proxy import DelayProxy

__all__ = ["DelayProxy"]

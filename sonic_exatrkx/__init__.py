"""sonic-exatrkx: ExaTrkX GNN track finding as a service, in an event-loop framework."""

__version__ = "0.1.0"

"""Explain NAT decisions: walk nat rules like the kernel, predict SNAT, promised shares."""

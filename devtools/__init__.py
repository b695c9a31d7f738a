"""Local stand-ins for production infrastructure, shared by the suite, the tests and the lab.

An embedded `redis-server`, free loopback ports, the CPU Triton launcher and its repository
builder, and the generator of the gRPC code. Nothing in `services/` imports this package.
"""

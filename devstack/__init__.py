"""The development stack: an OpenStack Swift all-in-one, a Keystone, the local cluster and
pman started together on one machine (``localcluster up``, ``make serve``), the demo that
runs one job through them (``make demo``), and the local cluster's example Job.

It serves pman and the publisher the way a real deployment would, over their command lines
and HTTP; it imports neither of them, and the local cluster does not import it.
"""

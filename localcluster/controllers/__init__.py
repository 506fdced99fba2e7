"""The local cluster's controllers: the Job controller and the garbage collector, on a
shared work-queue loop."""

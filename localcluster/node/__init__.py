"""The local cluster's one node: a kubelet that runs each pod's containers as local
processes, with their volumes, memory limits, status and logs."""

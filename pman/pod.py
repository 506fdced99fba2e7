"""The parts of a job pod, by name: what :mod:`pman.jobspec` builds, what
:mod:`pman.status` reads back, and what tests and tools look up. The publisher knows the
same names only from the command lines pman writes into the pod."""

from __future__ import annotations

# Containers, in the order they run: stage-in (an init container), then the processor
# beside the publish sidecar.
STAGE_IN = "stage-in"
PROCESSOR = "processor"
PUBLISH = "publish"

# Volumes.
SHARE_VOLUME = "share"
CREDENTIALS_VOLUME = "swift-credentials"
TOKEN_VOLUME = "kube-api-access"
SHM_VOLUME = "dshm"

# Where the processor finds its input and leaves its output.
SHARE = "/share"
INCOMING = f"{SHARE}/incoming"
OUTGOING = f"{SHARE}/outgoing"

"""The parts of a job pod, by name: what :mod:`pman.jobspec` builds, what
:mod:`pman.status` reads back, and what tests and tools look up. The publisher knows the
same names only from the command lines pman writes into the pod."""

from __future__ import annotations

# Containers, in the order they run: stage-in (an init container), then the processor
# beside the publish sidecar. In the volume storage modes: check-input (an init container,
# for jobs that need their input), then the processor alone.
STAGE_IN = "stage-in"
CHECK_INPUT = "check-input"
PROCESSOR = "processor"
PUBLISH = "publish"

# Volumes.
SHARE_VOLUME = "share"
CREDENTIALS_VOLUME = "swift-credentials"
TOKEN_VOLUME = "kube-api-access"
SHM_VOLUME = "dshm"
STOREBASE_VOLUME = "storebase"  # upstream's name for the client's shared directory

# Where the processor finds its input and leaves its output.
SHARE = "/share"
INCOMING = f"{SHARE}/incoming"
OUTGOING = f"{SHARE}/outgoing"
# Where check-input sees the whole storeBase, read-only.
STOREBASE_DIR = "/storebase"

# Where a job's data lives, recorded on its Job and pods (for the data routes and messages).
INPUT_ANNOTATION = "pman.chrisproject.org/input-dir"
OUTPUT_ANNOTATION = "pman.chrisproject.org/output-dir"

# What the publish container writes last, beside the outputs (or where pman says): the
# publisher's manifest, its format, and the most pman reads of one.
MANIFEST = ".publisher-manifest.json"
MANIFEST_FORMAT = "pman-publisher-manifest/"
# A manifest lists every file with its checksums: some hundred bytes per file.
MAX_MANIFEST_BYTES = 64 << 20

"""What the tests share: the session's real servers (Swift, the cluster), pman served over
HTTP, the publisher's CLI, request bodies, pods shaped like pman's, trees of files, and one
way to wait. No test module imports another; they all import from here."""

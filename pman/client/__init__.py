"""The ``pman`` command's client side: submit, status, logs, delete, push and pull against
a pman server over HTTP. It shares only the archive format (:mod:`pman.archive`) with the
server."""

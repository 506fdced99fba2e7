"""What the OpenShift tests need: a local ``oc process``, the restricted policy's checks, the
Route, RBAC and Dockerfile readers, and pman deployed from its template."""

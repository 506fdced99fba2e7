"""Swift credentials shared by pman and the publisher: one parser, no policy (and, in
:mod:`swiftcreds.reasons`, how both word a failed connection).

``swift-credentials.cfg`` files and the ST_* / OS_* environment variables become a
:class:`Credentials`; :func:`keystone_plugin` and :func:`swiftclient_options` turn one into
what keystoneauth1 and python-swiftclient take. Nothing here does I/O beyond reading the
file it is given, and failures are :class:`CredentialsError`, which each caller translates
into its own error. Which file to read by default is the caller's business.
:mod:`swiftcreds.tempurl` reads Swift temporary URLs, the credentials of pman's job pods
when they hold no secret.
"""

from swiftcreds.auth import keystone_plugin, swiftclient_options
from swiftcreds.credentials import (
    Credentials,
    CredentialsError,
    from_environment,
    from_sections,
    load_file,
)

__all__ = [
    "Credentials",
    "CredentialsError",
    "from_environment",
    "from_sections",
    "keystone_plugin",
    "load_file",
    "swiftclient_options",
]

"""Job request bodies for tests: pfcon's real request, in the forms pfcon sends it, and
bad values of each field with the words pman's answer must use."""

from __future__ import annotations

import copy
from typing import Any

PFCON_REQUEST: dict[str, Any] = {
    "args": ["--saveinputmeta", "--saveoutputmeta", "--dir", "cube/uploads"],
    "args_path_flags": ["--dir"],
    "auid": "cube",
    "number_of_workers": 1,
    "cpu_limit": 1000,
    "memory_limit": 200,
    "gpu_limit": 0,
    "image": "fnndsc/pl-simplefsapp",
    "entrypoint": ["python3", "/usr/local/bin/simplefsapp"],
    "type": "fs",
    "env": ["CHRIS_JID=chris-jid-42"],
    "input_dir": "key-chris-jid-42/incoming",
    "output_dir": "key-chris-jid-42/outgoing",
    "jid": "chris-jid-42",
}


def pfcon_request(**changes: Any) -> dict[str, Any]:
    """pfcon's request with some fields changed (None removes a field)."""
    body = copy.deepcopy(PFCON_REQUEST)
    for key, value in changes.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


# (field, bad value or None to leave the field out, words the message for it must hold)
BAD_FIELDS = [
    ("jid", None, "is required"),
    ("jid", 42, "must be a string"),
    ("jid", "", "must not be empty"),
    ("jid", "Chris", "DNS-1123"),
    ("jid", "chris_42", "DNS-1123"),
    ("jid", "a/b", "DNS-1123"),
    ("jid", "a?b", "DNS-1123"),
    ("jid", "a b", "DNS-1123"),
    ("jid", "a%20", "DNS-1123"),
    ("jid", "-a", "DNS-1123"),
    ("jid", "a" * 64, "at most 63"),
    ("args", None, "is required"),
    ("args", "--dir", "must be an array"),
    ("args", ["--a", 1], "item 1: must be a string"),
    ("args_path_flags", [None], "item 0: must be a string"),
    ("auid", None, "is required"),
    ("auid", ["cube"], "must be a string"),
    ("auid", "x" * 300, "at most 256"),
    ("number_of_workers", None, "is required"),
    ("number_of_workers", 0, "from 1 to 999"),
    ("number_of_workers", "-1", "whole number"),
    ("cpu_limit", 1.5, "whole number"),
    ("cpu_limit", "1.5", "whole number"),
    ("cpu_limit", "abc", "whole number"),
    ("cpu_limit", -1000, "from 1 to"),
    ("cpu_limit", True, "not a boolean"),
    ("cpu_limit", None, "is required"),
    ("memory_limit", [200], "whole number"),
    ("memory_limit", "", "whole number"),
    ("memory_limit", 10**12, "from 1 to"),
    ("gpu_limit", -1, "from 0 to"),
    ("gpu_limit", None, "is required"),
    ("image", None, "is required"),
    ("image", "", "image reference"),
    ("image", "a b", "image reference"),
    ("image", 7, "must be a string"),
    ("entrypoint", None, "is required"),
    ("entrypoint", [], "must not be empty"),
    ("entrypoint", "python3", "must be an array"),
    ("entrypoint", ["python3", {}], "item 1: must be a string"),
    ("entrypoint", ["py\x00thon"], "NUL"),
    ("type", None, "is required"),
    ("type", "DS", "one of 'ds', 'fs', 'ts'"),
    ("type", "xs", "one of"),
    ("env", ["NOEQUALS"], "item 0: 'NOEQUALS' is not KEY=VALUE"),
    ("env", ["=value"], "not a valid environment variable name"),
    ("env", ["1A=b"], "not a valid environment variable name"),
    ("env", "A=b", "must be an array"),
    ("env", [3], "item 0: must be a string"),
    ("input_dir", "key/../etc", "'..'"),
    ("input_dir", "key/./x", "'.'"),
    ("input_dir", "//etc/passwd", "not absolute"),
    ("input_dir", "/", "not empty"),
    ("input_dir", "", "not empty"),
    ("input_dir", "key//x", "empty path segments"),
    ("input_dir", 5, "must be a string"),
    ("output_dir", "..", "'..'"),
    ("output_dir", "x" * 1025, "at most 1024"),
]

# Bad values that only a hostile or broken client sends, with the words pman's answer must
# use. JSON Schema cannot state all of these (a "$" in its patterns ends the input, which a
# Python-based validator reads as "before a final newline"), so they are checked apart.
HOSTILE_FIELDS = [
    ("jid", "chris-jid-42\n", "DNS-1123"),
    ("image", "fnndsc/pl-simplefsapp\n", "image reference"),
    ("image", "x" * 10_000, "at most 520 characters"),
    ("image", "fnndsc/pl-\ud800", "not valid Unicode"),
    ("env", ["CHRIS_JID\n=chris-jid-42"], "not a valid environment variable name"),
    ("env", ["CHRIS_JID=\udfff"], "not valid Unicode"),
    ("entrypoint", [""], "item 0: the program must not be empty"),
    ("entrypoint", ["python3", "\ud800"], "not valid Unicode"),
    ("args", ["--dir", "\ud800"], "not valid Unicode"),
    ("args_path_flags", ["\ud800"], "not valid Unicode"),
    ("auid", "cube\ud800", "not valid Unicode"),
    ("cpu_limit", "9" * 5000, "from 1 to 9999999"),
    ("memory_limit", "0" * 5000 + "200" + "0" * 5000, "from 1 to 99999999"),
    ("output_dir", "c" * 257 + "/outgoing", "container name must be at most 256 bytes"),
    ("input_dir", "\u00e9" * 129 + "/incoming", "container name must be at most 256 bytes"),
    ("output_dir", "key/" + "p" * 1000, "object prefix must be at most 999 bytes"),
    ("input_dir", "key/" + "\u00e9" * 500, "object prefix must be at most 999 bytes"),
    ("input_dir", "key-\ud800/incoming", "not valid Unicode"),
    ("type", "\ud800", "not valid Unicode"),
]

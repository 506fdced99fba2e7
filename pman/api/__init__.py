"""pman's HTTP front ends, as Flask blueprints over one job service.

- :mod:`pman.api.v6`: the pman v6 REST contract (``/api/v1/``) and the job list;
- :mod:`pman.api.data`: a job's input into Swift and its output out of it (``/api/v1/_data/``);
- :mod:`pman.api.ops`: health, readiness, metrics and the OpenAPI document;
- :mod:`pman.api.common`: what every request goes through (the token, the error answers).
"""

"""The Lambda Runtime API's side of ``holdfast run`` (whose host is :mod:`holdfast.hosts.custom`).

``client`` is the Runtime API client, ``loader`` finds the app, ``context`` builds the handler's
context object, ``streaming`` frames streamed HTTP responses, ``snapstart`` runs the
snapshot/restore handshake, ``report`` shapes the errors posted to Lambda, ``logs`` applies
Lambda's log format and level, ``bootstrap`` prepares the process (shared with ``holdfast
proxy``), ``cli`` is the command.
"""

"""The custom runtime: ``holdfast run MODULE:ATTR`` speaks the Lambda Runtime API itself.

``client`` is the Runtime API client, ``loop`` the ``next → handle → respond → drain`` loop,
``loader`` finds the app, ``context`` builds the handler's context object, ``streaming`` frames
streamed HTTP responses, ``snapstart`` runs the snapshot/restore handshake, ``report`` shapes the
errors posted to Lambda, ``logs`` applies Lambda's log format and level, ``sigterm`` is the one
SIGTERM path, ``bootstrap`` prepares the process (shared with ``holdfast proxy``), ``cli`` is the
command.
"""

"""The custom runtime: ``holdfast run MODULE:ATTR`` speaks the Lambda Runtime API itself.

``client`` is the Runtime API client, ``loop`` the ``next → handle → respond → drain`` loop,
``loader`` finds the app, ``context`` builds the handler's context object, ``streaming`` frames
streamed HTTP responses, ``snapstart`` runs the snapshot/restore handshake, ``report`` shapes the
errors posted to Lambda, ``cli`` is the command.
"""

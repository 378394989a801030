"""The whole suite's root. pytest imports this file with ``tests`` put first on ``sys.path``
(rootdir conftest, no ``__init__.py``), so the helpers here that several test directories share
— ``lambda_events``, ``moto_support`` — import by name from any of them."""

"""shop: an example FastAPI service deployed on AWS Lambda with holdfast.

The package is the function's code: `shop.app.handler` is the Lambda handler (managed Python
runtime) and `holdfast run shop.app:handler` the custom runtime / container command.
"""

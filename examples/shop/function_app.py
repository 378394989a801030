"""The shop on Azure Functions (Python v2 programming model): the same app, the same
`holdfast.Adapter` (and its options) as on Lambda, and the report jobs on Azure Queue Storage.

    SHOP_QUEUE_URL=azure://shop-jobs?table=shopstatus   (app setting; the storage account of
                                                        AzureWebJobsStorage)

With `azurefunctions-extensions-http-fastapi` installed (requirements-azure.txt) the worker
streams HTTP: `POST /api/signup` answers at once and its BackgroundTasks (the audit record,
the welcome mail) finish inside the invocation. `shop-jobs` is consumed by a queue trigger of
this app, and `shop.daily_digest` by a timer trigger. See docs/deploying-azure.md.
"""

from __future__ import annotations

from shop.app import handler
from shop.jobs import queue

import holdfast.azure

app = holdfast.azure.FunctionApp(
    handler,
    http_auth_level="ANONYMOUS",  # the shop checks its own bearer tokens
    task_queues=[queue] if queue.url.startswith("azure://") else [],
)

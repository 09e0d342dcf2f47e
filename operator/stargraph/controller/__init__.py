"""The operator: reconciles trigger objects into the trigger plugins and reports back through status and Events.

Only `stargraph.controller.kopf_runner` imports kopf; everything else here is plain asyncio over `stargraph.k8s`.
"""

"""The coordination hub: federated queries across hospital nodes, or a central store fed by them.

`config` (which nodes, how to reach them), `auth` (credentials per node), `client` (one node over
HTTP), `federation` (fan-out and merge into one Bundle), `merge` (origins, duplicates, partial
results), `central` (pulling committed changes from node outboxes), `app` (the hub's HTTP API),
`cli` (`lienthong hub`). Nothing here imports the adapters: a node is any FHIR R4 server.
"""

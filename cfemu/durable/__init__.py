"""Durable Objects: ids, namespaces and stubs, instances with input/output gates, storage, alarms, WebSockets, migrations."""

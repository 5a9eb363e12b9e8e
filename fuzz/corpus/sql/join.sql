SELECT i.id, e.kind, e.name FROM incidents_latest i JOIN incident_entities e ON i.id = e.id AND i.version = e.version WHERE e.namespace LIKE 'prod-%' LIMIT 10

"""The peers the throughput scenario compares with: Celery (Redis broker) and taskiq
(NATS JetStream broker). Each app module reads its broker URL from the environment, since
their workers import it by name."""
